"""Settings as trees of frozen dataclasses: set a value by its path, rebuild each part once, build from a mapping."""

from dataclasses import fields, is_dataclass, replace
from typing import Any, Dict, Mapping

from neurohand.decoder.errors import InvalidValueError


def default_of(f: Any) -> Any:
    """Return the default value of dataclass field ``f`` (a fresh one from its factory)."""
    return f.default_factory() if callable(f.default_factory) else f.default


def put_path(tree: Dict[str, Any], path: str, value: Any) -> None:
    """Set ``tree[a][b]...[z] = value`` for ``path`` 'a.b...z'."""
    *parents, leaf = path.split(".")
    for name in parents:
        tree = tree.setdefault(name, {})
        if not isinstance(tree, dict):
            raise InvalidValueError("Invalid training setting {!r}: {!r} is set as a whole too".format(path, name))
    tree[leaf] = value


def apply_changes(obj: Any, changes: Dict[str, Any], prefix: str) -> Any:
    """``obj`` with ``changes`` (a tree of setting names) applied, each dataclass rebuilt once."""
    known = {f.name for f in fields(obj)}
    kw = {}
    for name, value in changes.items():
        if name not in known:
            raise InvalidValueError("Unknown training setting {!r}; expected one of {}".format(
                prefix + name, ", ".join(repr(prefix + k) for k in sorted(known))))
        current = getattr(obj, name)
        if isinstance(value, dict) and is_dataclass(current):
            value = apply_changes(current, value, prefix + name + ".")
        kw[name] = value
    return replace(obj, **kw)


def build_dataclass(cls: Any, d: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` from a nested mapping, parts from their sub-mappings; unknown keys are ignored."""
    kw = {}
    for f in fields(cls):
        if f.name in d:
            default = default_of(f)
            value = d[f.name]
            kw[f.name] = build_dataclass(type(default), value) if is_dataclass(default) and isinstance(value, Mapping) \
                else value
    return cls(**kw)
