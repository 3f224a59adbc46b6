"""Run the examples in the docstrings of every flowpump module (warnings are errors here too)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType
from typing import Any

import pytest

import flowpump

#: Modules that do something when imported.
NOT_IMPORTED = {"flowpump.__main__"}  # runs the command line


class _Finder(doctest.DocTestFinder):
    """Finds the docstrings of flowpump's public names under ``flowpump``, where they live.

    ``flowpump/__init__.py`` sets ``__module__ = "flowpump"`` on what it re-exports, so the
    default finder skips those objects in their private module, and then skips their methods
    (still ``flowpump._graph`` & co.) under ``flowpump``. Here ``flowpump`` claims every object
    of the package, and each docstring is kept once (see ``_collect``).
    """

    def _from_module(self, module: ModuleType | None, obj: Any) -> bool:
        if module is flowpump:
            return str(getattr(obj, "__module__", None) or "").startswith("flowpump")
        return bool(super()._from_module(module, obj))  # type: ignore[misc]  # private, untyped


def _modules() -> tuple[list[ModuleType], list[Any]]:
    modules: list[ModuleType] = [flowpump]
    missing: list[Any] = []
    for info in pkgutil.walk_packages(flowpump.__path__, "flowpump."):
        if info.name in NOT_IMPORTED:
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith("flowpump"):
                raise
            # An optional connector whose extra is not installed.
            reason = f"{info.name} needs {exc.name}"
            missing.append(pytest.param(None, id=info.name, marks=pytest.mark.skip(reason=reason)))
    return modules, missing


def _collect() -> list[Any]:
    modules, missing = _modules()
    finder = _Finder(exclude_empty=True)
    seen: set[str] = set()
    params: list[Any] = []
    for module in modules:
        for test in sorted(finder.find(module), key=lambda t: t.name):
            if not test.examples or test.docstring in seen:
                continue
            seen.add(test.docstring or "")
            params.append(pytest.param(test, id=test.name))
    return params + missing


DOCTESTS = _collect()


def test_public_examples_are_found() -> None:
    names = {p.id for p in DOCTESTS}
    for name in ("flowpump", "flowpump.map", "flowpump.Flow", "flowpump.Pipeline", "flowpump.DeadLetter"):
        assert name in names


@pytest.mark.parametrize("test", DOCTESTS)
def test_docstring_examples(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
