"""The public surface: ``flowpump.__all__`` is sorted and complete, and every name presents well."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import pytest

import flowpump as fp

#: The core names of the contract in DESIGN.md; all must exist.
CONTRACT = [
    "map",
    "filter",
    "flat_map",
    "map_async",
    "batch",
    "unbatch",
    "tap",
    "from_iterable",
    "read_jsonl",
    "read_lines",
    "read_csv",
    "write_jsonl",
    "write_lines",
    "collect",
    "sink",
    "stdin",
    "stdout",
    "merge",
    "tee",
    "Flow",
    "Source",
    "Processor",
    "Sink",
    "Pipeline",
    "RunReport",
    "DeadLetter",
    "PipelineTypeError",
]

#: The application frame's names in DESIGN.md, built after the core: exported once they exist.
LATER = [
    "Application",
    "SQLite",
    "Postgres",
    "HTTPClient",
    "Lookup",
    "enrich",
    "every",
    "cron",
    "once",
    "on",
    "poll",
    "read_sql",
    "to_sql",
]

PUBLIC = sorted(fp.__all__)


def test_all_is_sorted_and_unique() -> None:
    assert fp.__all__ == sorted(fp.__all__)
    assert len(set(fp.__all__)) == len(fp.__all__)


@pytest.mark.parametrize("name", CONTRACT)
def test_contract_name_is_exported(name: str) -> None:
    assert name in fp.__all__


@pytest.mark.parametrize("name", LATER)
def test_later_contract_name_is_exported_once_it_exists(name: str) -> None:
    if not hasattr(fp, name):
        pytest.skip(f"fp.{name} is not built yet")
    assert name in fp.__all__


def test_every_public_attribute_is_in_all() -> None:
    public = {n for n, v in vars(fp).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert public == set(fp.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from flowpump import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == PUBLIC
    assert all(namespace[n] is getattr(fp, n) for n in PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_shows_flowpump_not_a_private_module(name: str) -> None:
    obj = getattr(fp, name)
    assert obj.__module__ == "flowpump"
    if inspect.isclass(obj):
        assert repr(obj) == f"<class 'flowpump.{obj.__qualname__}'>"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(fp, name)
    doc = obj.__doc__  # its own, not one inherited through inspect.getdoc
    assert doc, f"fp.{name} has no docstring"
    if inspect.isclass(obj):
        # A dataclass without a docstring gets its signature as __doc__: not documentation.
        assert not doc.startswith(f"{obj.__name__}("), f"fp.{name} has only a generated docstring"


def _public_members(cls: type) -> list[tuple[str, Any]]:
    """Methods and properties ``cls`` itself defines (inherited ones are checked on their class)."""
    out = []
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if inspect.isfunction(fn) or isinstance(fn, property):
            out.append((attr, fn))
    return out


MEMBERS = [
    pytest.param(fn, id=f"{name}.{attr}")
    for name in PUBLIC
    if inspect.isclass(getattr(fp, name))
    for attr, fn in _public_members(getattr(fp, name))
]


@pytest.mark.parametrize("member", MEMBERS)
def test_public_method_has_a_docstring(member: Any) -> None:
    assert member.__doc__


def test_instances_and_errors_show_public_names() -> None:
    flow = fp.from_iterable([1, 2]) >> fp.map(str)
    assert type(flow).__module__ == "flowpump"
    assert repr(flow) == "<Flow map(str)>"
    assert repr(fp.from_iterable([1])) == "<Source from_iterable(list)>"
    assert repr(fp.map(str) >> fp.filter(bool)) == "<Processor map(str) >> filter(bool)>"
    assert repr(fp.collect[int]()) == "<Sink collect()>"
    err = fp.PipelineTypeError("m", upstream="a", downstream="b", produced=int, expected=str)
    assert f"{type(err).__module__}.{type(err).__qualname__}" == "flowpump.PipelineTypeError"
