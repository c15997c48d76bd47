"""Dataclass configs, TOML preset files and `--set key=value` overrides.

A config is a (possibly nested) dataclass. Presets are TOML files that set some of its fields; a
preset or config file may start from a shipped preset with `extends = "faces-default"` and set only
what differs. Overrides use dotted names for nested fields (`model.width=32`). Unknown keys and badly
typed values are errors that name the key, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from kplab.errors import ConfigError

C = TypeVar("C")
EXTENDS = "extends"  # the key naming the shipped preset a TOML file starts from


def preset_path(name: str) -> Path:
    """Path of a preset TOML shipped inside the package, e.g. `faces-fast`."""
    path = _presets_dir() / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(shipped_presets())}")
    return path


def shipped_presets() -> list[str]:
    return sorted(p.stem for p in _presets_dir().glob("*.toml"))


def _presets_dir() -> Path:
    return Path(str(resources.files("kplab") / "presets"))


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) for JSON and TOML."""
    return _plain(dataclasses.asdict(cfg))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[C], data: dict[str, Any], *, where: str = "config") -> C:
    """Build `cls` from a nested dict; unknown keys and wrong types raise ConfigError."""
    return merge(cls(), data, where=where)


def merge(cfg: C, data: dict[str, Any], *, where: str = "config") -> C:
    """A copy of `cfg` with the fields in `data` replaced (recursively for nested dataclasses)."""
    hints = typing.get_type_hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(names))}")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a table of settings")
            changes[key] = merge(current, value, where=f"{where}.{key}")
        else:
            changes[key] = _coerce(value, hints[key], f"{where}.{key}")
    return dataclasses.replace(cfg, **changes)


def apply_overrides(cfg: C, overrides: typing.Iterable[str]) -> C:
    """Apply `key=value` strings; `a.b=1` reaches nested fields. Values are parsed by field type."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        *parents, leaf = key.strip().split(".")
        patch: dict[str, Any] = {leaf: _parse_text(text.strip())}
        for parent in reversed(parents):
            patch = {parent: patch}
        cfg = merge(cfg, patch, where="--set")
    return cfg


def load_config(cls: type[C], *, preset: str | None = None, file: str | Path | None = None,
                overrides: typing.Iterable[str] = (), base: C | None = None) -> C:
    """Defaults (or `base`, e.g. a saved run's config), then a preset or a TOML file, then `--set`
    overrides, in that order."""
    cfg = cls() if base is None else base
    if preset and file:
        raise ConfigError("give either a preset or a config file, not both")
    if preset or file:
        for path, data in _extension_chain(preset_path(preset) if preset else Path(file)):
            cfg = merge(cfg, data, where=str(path))
    return apply_overrides(cfg, overrides)


def _extension_chain(path: Path, below: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """(file, its settings) in the order they apply: the presets `path` extends first, then its own.
    `below`: the files already on the chain, so a loop of `extends` is an error, not a recursion."""
    data = read_toml(path)
    if EXTENDS not in data:
        return [(path, data)]
    parent = data.pop(EXTENDS)
    if parent not in shipped_presets():
        raise ConfigError(f"{path}: {EXTENDS} = {parent!r} names no shipped preset; known presets: "
                          f"{', '.join(shipped_presets())}")
    if preset_path(parent) in (*below, path):
        raise ConfigError(f"{path}: {EXTENDS} = {parent!r} makes a loop of presets")
    return [*_extension_chain(preset_path(parent), (*below, path)), (path, data)]


def _parse_text(text: str) -> Any:
    """Read an override value as TOML when it is one (numbers, bools, lists), else as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if number != int(number):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        return str(value)
    return value
