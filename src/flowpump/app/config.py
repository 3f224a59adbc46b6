"""Settings: a TOML file decoded into the user's msgspec Struct, with environment overrides.

Precedence, lowest first: the Struct's defaults, the TOML file, then environment variables named
``{prefix}{FIELD}`` (nested fields joined by ``__``: ``FLOWPUMP_DB__PORT`` sets ``db.port``). An
environment value is taken as the string it is when the field accepts a string (``str``,
``str | None``, a date), else read as JSON when it parses (``8080``, ``true``, ``["a"]``) and as a
plain string otherwise, then converted to the field's type. A nested Struct may also be set whole,
as a JSON object (``FLOWPUMP_DB='{"port": 5433}'``, merged over the file; ``FLOWPUMP_DB__PORT`` wins).

>>> import msgspec
>>> class Settings(msgspec.Struct):
...     port: int = 8080
>>> load_settings(Settings, None, env={"FLOWPUMP_PORT": "9000"})
Settings(port=9000)
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from .._errors import FlowpumpError

__all__ = ["ConfigError", "load_settings"]

C = TypeVar("C")

_MSGSPEC_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"missing required field `(?P<field>[^`]+)`")
_EXPECTED = re.compile(r"Expected `(?P<type>[^`]+)`")


class ConfigError(FlowpumpError, ValueError):
    """The settings do not fit the settings Struct; ``key`` and ``expected`` say where and what."""

    def __init__(self, message: str, *, key: str | None, expected: str | None, source: str) -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.source = source


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1:
        return _struct_of(args[0])
    return None


def _takes_string(raw: str, tp: Any) -> bool:
    """True if a field of type ``tp`` takes ``raw`` as a string (``str``, ``str | None``, a date ...)."""
    try:
        msgspec.convert(raw, tp)
    except (msgspec.ValidationError, TypeError):
        return False
    return True


def _env_overrides(
    cls: type[msgspec.Struct],
    prefix: str,
    env: Mapping[str, str],
    data: dict[str, Any],
    path: str,
    origin: dict[str, str],
) -> None:
    for f in msgspec.structs.fields(cls):
        var = f"{prefix}{f.encode_name.upper()}"
        key = f"{path}{f.encode_name}"
        nested = _struct_of(f.type)
        if nested is not None:
            sub = data.get(f.encode_name)
            if not isinstance(sub, dict):
                sub = {}
            if var in env:
                # The whole Struct as a JSON object (``FLOWPUMP_DB='{"port": 5433}'``), merged
                # over the file's table; ``FLOWPUMP_DB__PORT`` & co. still apply on top.
                try:
                    whole = msgspec.json.decode(env[var])
                except msgspec.DecodeError:
                    whole = None
                if not isinstance(whole, dict):
                    msg = (
                        f"setting `{key}` (environment variable {var}) expected a JSON object such as "
                        f"'{{\"field\": value}}', or set its fields one by one: {var}__FIELD=value"
                    )
                    raise ConfigError(msg, key=key, expected="object", source=f"environment variable {var}")
                sub = {**sub, **whole}
                data[f.encode_name] = sub
                origin.update({f"{key}.{k}": var for k in whole})
            before = len(origin)
            _env_overrides(nested, var + "__", env, sub, key + ".", origin)
            if len(origin) > before or f.encode_name in data:
                data[f.encode_name] = sub
            continue
        if var not in env:
            continue
        raw = env[var]
        value: Any = raw
        if not _takes_string(raw, f.type):
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                value = raw
        data[f.encode_name] = value
        origin[key] = var


def _error(exc: msgspec.ValidationError, source: str, origin: dict[str, str]) -> ConfigError:
    text = str(exc)
    m = _MSGSPEC_ERROR.match(text)
    what, path = (m.group("what"), m.group("path") or "") if m else (text, "")
    key = path.lstrip(".")
    missing = _MISSING.search(what)
    if missing:
        key = f"{key}.{missing.group('field')}" if key else missing.group("field")
    expected_m = _EXPECTED.search(what)
    expected = expected_m.group("type") if expected_m else None
    where = f"environment variable {origin[key]}" if key in origin else source
    if missing:
        msg = f"setting `{key}` is missing ({where}); add it to the TOML file or set it in the environment"
    elif expected is not None:
        msg = f"setting `{key}` ({where}) expected `{expected}`: {what}"
    else:
        msg = f"setting `{key or '(top level)'}` ({where}): {what}"
    return ConfigError(msg, key=key or None, expected=expected, source=where)


def load_settings(
    cls: type[C],
    path: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str] | None = None,
    prefix: str = "FLOWPUMP_",
) -> C:
    """Decode the TOML file at ``path`` (if any) with ``env`` overrides into ``cls``."""
    source = os.fspath(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError as exc:
            msg = f"settings file {source!r} does not exist"
            raise ConfigError(msg, key=None, expected=None, source=source) from exc
        except tomllib.TOMLDecodeError as exc:
            msg = f"settings file {source!r} is not valid TOML: {exc}"
            raise ConfigError(msg, key=None, expected=None, source=source) from exc
    origin: dict[str, str] = {}
    struct = _struct_of(cls)
    if struct is not None:
        _env_overrides(struct, prefix, os.environ if env is None else env, data, "", origin)
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise _error(exc, source, origin) from exc
