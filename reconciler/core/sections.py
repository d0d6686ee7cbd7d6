"""Read a YAML mapping into a settings dataclass, driven by the dataclass's own fields.

A section of `hoody.yaml` is a frozen dataclass: each field is a key, the field's default is
the key's default and its annotation says what the key takes. So the known keys and the
defaults cannot drift from the parser: adding a key is adding a field, adding a section is
adding a dataclass (and a field of that type on its parent). A field without a default is
required.

Annotations understood: `bool`, `int`, `str`, `Path`; `float` (an integer or a number);
`Seconds` (a duration: `30`, `"250ms"`, `"5m"`, `"72h"`); `Bytes` (a size: `1048576`,
`"256k"`, `"512m"`, `"4g"`, powers of 1024); `X | None`; `tuple[str, ...]` (a
list, or one string); `tuple[Section, ...]` (a list of mappings); `Mapping[str, str]`
(variable names to strings or numbers); a nested dataclass (a mapping). Constraints ride in
`Annotated[...]` as rules (`Floor`, `Between`, `OneOf`, `Check`, `Each`), applied to values
read from the file (defaults are trusted). Every error names the key path.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from reconciler.core.errors import ConfigError

T = TypeVar("T")


class _Duration:
    """Marks a float read as a duration in seconds (`30`, `"30s"`, `"5m"`)."""


DURATION = _Duration()
Seconds = Annotated[float, DURATION]


class _Size:
    """Marks an int read as a size in bytes (`1048576`, `"256k"`, `"512m"`, `"4g"`)."""


SIZE = _Size()
Bytes = Annotated[int, SIZE]


class Rule:
    """A constraint on a value read from the file; returns the value to keep."""

    def apply(self, value: Any, path: str) -> Any:
        raise NotImplementedError


class Floor(Rule):
    """Values below `low` are read as `low` (a worker count of 0 means one worker)."""

    def __init__(self, low: int) -> None:
        self.low = low

    def apply(self, value: Any, path: str) -> Any:
        return max(self.low, value)


class Between(Rule):
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def apply(self, value: Any, path: str) -> Any:
        if not self.low <= value <= self.high:
            raise ConfigError(path, f"must be between {self.low} and {self.high}")
        return value


class OneOf(Rule):
    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)

    def apply(self, value: Any, path: str) -> Any:
        if value not in self.choices:
            raise ConfigError(path, f"must be one of {', '.join(self.choices)}")
        return value


class Check(Rule):
    """A predicate and the message given when it is false."""

    def __init__(self, predicate: Callable[[Any], object], message: str) -> None:
        self.predicate, self.message = predicate, message

    def apply(self, value: Any, path: str) -> Any:
        if not self.predicate(value):
            raise ConfigError(path, self.message)
        return value


class Each(Rule):
    """A rule applied to every item of a tuple, each error naming the item (`notify[2]`)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def apply(self, value: Any, path: str) -> Any:
        return tuple(self.rule.apply(v, f"{path}[{i}]") for i, v in enumerate(value))


def read_section(cls: type[T], data: Any, path: str = "") -> T:
    """`cls` built from the mapping `data` (None = empty) found at key path `path`."""
    reader = _Reader(data, path)
    init = [f for f in fields(cls) if _is_key(f)]  # type: ignore[arg-type]
    reader.check_unknown(tuple(f.name for f in init))
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in init:
        kind, rules = _unwrap(hints[f.name])
        key = reader.key(f.name)
        if reader.absent(f.name):
            if _required(f):
                raise ConfigError(key, "required")
            continue  # the dataclass applies its own default
        value = _read(reader, f.name, kind)
        if value == "" and _required(f):
            raise ConfigError(key, "required")
        for rule in rules:
            value = rule.apply(value, key)
        values[f.name] = value
    return cls(**values)


def known_keys(cls: type) -> tuple[str, ...]:
    """The keys a section accepts, in the order of its fields."""
    return tuple(f.name for f in fields(cls) if _is_key(f))


def _is_key(f: Field[Any]) -> bool:
    """A field read from hoody.yaml (`metadata={"key": False}` marks one set otherwise)."""
    return f.init and f.metadata.get("key", True)


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _unwrap(tp: Any) -> tuple[Any, list[Rule]]:
    """(the type to read, the rules) with `Annotated` and `| None` peeled off."""
    rules: list[Rule] = []
    while True:
        if get_origin(tp) is Annotated:
            rules += [m for m in tp.__metadata__ if isinstance(m, Rule)]
            if any(m is DURATION for m in tp.__metadata__):
                return DURATION, rules
            if any(m is SIZE for m in tp.__metadata__):
                return SIZE, rules
            tp = tp.__origin__
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                raise TypeError(f"settings cannot read a union of {rest}")
            tp = rest[0]
        else:
            return tp, rules


def _read(r: _Reader, k: str, tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is DURATION:
        return _duration(r, k)
    if tp is SIZE:
        return _size(r, k)
    if tp is bool or tp is int or tp is str:
        return r.get(k, tp)
    if tp is float:
        return float(r.get(k, (int, float)))
    if tp is Path:
        return Path(r.get(k, str))
    if isinstance(tp, type) and is_dataclass(tp):
        return read_section(tp, r.data[k], r.key(k))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if isinstance(item, type) and is_dataclass(item):
            raw = r.get(k, list)
            return tuple(read_section(item, v, f"{r.key(k)}[{i}]") for i, v in enumerate(raw))
        if item is str:
            raw = r.get(k, (list, str))
            items = [raw] if isinstance(raw, str) else raw
            for i, v in enumerate(items):
                if not isinstance(v, str):
                    raise ConfigError(
                        f"{r.key(k)}[{i}]", f"expected a string, got {type(v).__name__}"
                    )
            return tuple(items)
    if origin is Mapping and args == (str, str):
        return _str_map(r, k)
    raise TypeError(f"settings cannot read a field of type {tp!r} ({r.key(k)})")


class _Reader:
    """Typed access to one mapping at one key path."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                path or "(top level)", f"expected a mapping, got {type(data).__name__}"
            )
        self.data: dict[Any, Any] = data
        self.path = path

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def absent(self, k: str) -> bool:
        return k not in self.data or self.data[k] is None

    def get(self, k: str, types: type | tuple[type, ...]) -> Any:
        v = self.data[k]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ConfigError(self.key(k), f"expected {_tname(types)}, got a boolean")
        if not isinstance(v, types):
            raise ConfigError(self.key(k), f"expected {_tname(types)}, got {type(v).__name__}")
        return v

    def check_unknown(self, known: tuple[str, ...]) -> None:
        for k in self.data:
            if k not in known:
                raise ConfigError(self.key(str(k)), f"unknown key (known: {', '.join(known)})")


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(
        {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "a boolean",
            "dict": "a mapping",
            "list": "a list",
        }.get(t.__name__, t.__name__)
        for t in ts
    )


_DURATION_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(r: _Reader, k: str) -> float:
    v = r.get(k, (int, float, str))
    if isinstance(v, int | float):
        return float(v)
    m = _DURATION_TEXT.fullmatch(v)
    if not m:
        raise ConfigError(r.key(k), f"not a duration: {v!r} (e.g. 30s, 5m, 72h)")
    return float(m.group(1)) * _SCALE[m.group(2) or "s"]


_SIZE_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_POWER = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _size(r: _Reader, k: str) -> int:
    v = r.get(k, (int, str))
    if isinstance(v, int):
        size = v
    else:
        m = _SIZE_TEXT.fullmatch(v)
        if not m:
            raise ConfigError(r.key(k), f"not a size: {v!r} (e.g. 256k, 512m, 4g)")
        size = int(float(m.group(1)) * _POWER[m.group(2).lower()])
    if size < 0:
        raise ConfigError(r.key(k), "must not be negative")
    return size


def _str_map(r: _Reader, k: str) -> dict[str, str]:
    out = {}
    for name, v in r.get(k, dict).items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(r.key(f"{k}.{name}"), "not a valid variable name")
        if isinstance(v, bool) or v is None or isinstance(v, dict | list):
            raise ConfigError(r.key(f"{k}.{name}"), "expected a string or a number")
        out[name] = str(v)
    return out
