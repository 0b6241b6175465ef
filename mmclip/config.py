"""Configs as typed dataclasses ↔ plain nested dicts, changed with dotted paths.

Both configs of mmclip are nested dataclasses: the model config
(:class:`mmclip.models.MMCLIPConfig`) and the training config
(:class:`mmclip.train.TrainConfig`). This module is the one implementation that maps them to
and from plain nested dicts (JSON / YAML) and changes them, with one override syntax, the
dotted path (a number in a path indexes a list):

- on the command line, ``--set optim.lr=3e-4`` or ``--set data.sources.0.ratio=0.3``
  (:func:`apply_set`; the value is parsed as a YAML scalar by :func:`parse_value`);
- in Python, ``create_model("mmclip-tiny", overrides={"attmim.tau_final": float("inf")})``
  (:func:`apply_dotted`; values are taken as they are).

Example::

    tree = config_to_dict(TrainConfig())
    apply_set(tree, "optim.lr=3e-4")
    apply_dotted(tree, {"data.sources.0.ratio": 0.5})
    config = config_from_dict(TrainConfig, tree)  # checks every key and type

Why our own module (about 200 lines of code) rather than OmegaConf (or Hydra on top of it):

- no extra dependency: PyYAML, which reads the config files, is all it needs;
- strict typed dataclasses and nothing else: what the library and its checkpoints hold are
  the plain dataclasses and dicts, and a key that is not a field, or a value that does not fit
  the field's type hint (``Optional``, ``list[...]``, ``dict``, nested dataclasses), is a
  :class:`ConfigError` whose message names the dotted key (and the valid keys there);
- command-line values are parsed as YAML scalars, with ``inf``, ``-inf``, ``nan`` and
  ``1e-3`` read as floats (YAML 1.1 leaves them strings);
- we need none of the rest (interpolation, config groups, run directories), and a short
  module is easier to read and to keep consistent than a framework's conventions.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

import yaml

__all__ = [
    "ConfigError",
    "apply_dotted",
    "apply_set",
    "config_from_dict",
    "config_to_dict",
    "field_type",
    "flatten",
    "merge",
    "parse_value",
]

_T = TypeVar("_T")


class ConfigError(ValueError):
    """A bad config file, key or value; the message names the key."""


# --------------------------------------------------------------------------------------------
# dataclass <-> dict
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """Nested dataclass → plain dict, safe for YAML and JSON (infinite floats → ``"inf"``)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """``value`` as type ``hint`` (raises :class:`ConfigError` naming ``key``)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"config key {key!r} must not be null")
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, option, value)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if value is None:
        raise ConfigError(f"config key {key!r} must not be null")
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = config_to_dict(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r} must be a mapping; got {value!r}")
        return config_from_dict(hint, value, prefix=f"{key}.")  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list; got {value!r}")
        (item,) = args or (Any,)
        return [_coerce(f"{key}.{i}", item, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r} must be a mapping; got {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"config key {key!r} must be {_type_name(hint)}; got {value!r}")


def config_from_dict(cls: type[_T], data: Mapping[str, Any], prefix: str = "") -> _T:
    """Build dataclass ``cls`` from a partial nested mapping, checking every key and type.

    Missing keys keep their defaults. An ``int`` field accepts ``3.0``, a ``float`` field ints
    and strings such as ``"inf"``, a ``str`` field numbers; a ``bool`` only ``True`` / ``False``.

    Raises:
        ConfigError: an unknown key (the message names the dotted key and the valid keys) or
            a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {prefix.rstrip('.') or 'file'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r} (valid keys here: {', '.join(names)})"
            )
    kwargs = {k: _coerce(prefix + k, hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def field_type(cls: type, key: str) -> Any:
    """The type hint of the dotted ``key`` of dataclass ``cls``.

    ``field_type(TrainConfig, "optim.lr")`` is ``float``; an unknown key is a
    :class:`ConfigError` as in :func:`config_from_dict`.
    """
    hint: Any = cls
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(hint):
            raise ConfigError(f"config key {'.'.join(parts[:i])!r} is a value, not a section")
        names = [f.name for f in dataclasses.fields(hint)]
        if part not in names:
            raise ConfigError(
                f"unknown config key {'.'.join(parts[: i + 1])!r} "
                f"(valid keys here: {', '.join(names)})"
            )
        hint = typing.get_type_hints(hint)[part]
    return hint


# --------------------------------------------------------------------------------------------
# dotted overrides
# --------------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A command-line value as YAML; ``inf``, ``-inf``, ``nan`` and ``1e-3`` become floats."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ("inf", "-inf", "nan"):
            return float(value)
        if any(c in lowered for c in "e.") and not lowered.startswith("0x"):
            try:
                return float(value)
            except ValueError:
                return value
    return value


def _set(tree: dict[str, Any], key: str, value: Any, what: str) -> None:
    """Set the dotted ``key`` of ``tree`` (``what`` is the override, for error messages)."""
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override {what!r} has an empty key")
    node: Any = tree
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"unknown config key {here!r} (list of {len(node)} items)")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            elif part not in node:
                node = node.setdefault(part, {})  # free-form mappings grow
            else:
                node = node[part]
        else:
            raise ConfigError(f"config key {'.'.join(parts[:i])!r} is a value, not a section")


def apply_set(tree: dict[str, Any], assignment: str) -> None:
    """Apply one ``key.sub=value`` string to a nested dict in place (value via :func:`parse_value`).

    Missing intermediate mappings are created (the free-form ``model.overrides``); a number
    indexes an existing list item; setting below a plain value is a :class:`ConfigError`.
    """
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key.sub=value")
    key, text = assignment.split("=", 1)
    _set(tree, key, parse_value(text), assignment)


def apply_dotted(tree: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Set each dotted key of ``overrides`` to its value in a nested dict, in place.

    The Python form of :func:`apply_set`: ``apply_dotted(tree, {"attmim.tau_final": inf})``.
    Values are used as they are (not parsed); the same path rules apply.
    """
    for key, value in overrides.items():
        _set(tree, str(key), value, str(key))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"attmim": {"tau_final": 1}}`` → ``{"attmim.tau_final": 1}``.

    Mappings are walked (an empty one yields nothing); lists and scalars are values.
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def merge(
    tree: dict[str, Any],
    data: Mapping[str, Any],
    replace: Collection[str] = (),
    prefix: str = "",
) -> dict[str, Any]:
    """Merge ``data`` into ``tree`` in place and return ``tree``.

    Mappings merge key by key, except at the dotted paths in ``replace`` (e.g.
    ``"model.overrides"``), which ``data`` replaces whole, as it replaces every other value.
    """
    for key, value in data.items():
        if key in tree and isinstance(tree[key], dict) and isinstance(value, Mapping):
            if prefix + key in replace:
                tree[key] = dict(value)
            else:
                merge(tree[key], value, replace, f"{prefix}{key}.")
        else:
            tree[key] = value
    return tree
