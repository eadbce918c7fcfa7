"""A run's arguments as plain values: a dataclass of options with a docstring under each field
(CleanRL's style), filled from layers of mappings (defaults < a config file < command-line flags), each
value coerced to its field's type. Unknown keys are errors that name their source, not ignored."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import os
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import Any


def field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field (the string literal that follows it), or the field's
    metadata "help" for generated dataclasses (trader.rl.args.TraderEnvArgs), for --help."""
    docs: dict[str, str] = {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if "help" in f.metadata}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # made by dataclasses.make_dataclass: no source, help in metadata
            continue
        body = ast.parse(textwrap.dedent(source)).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = nxt.value.value
    return docs


def coerce(name: str, value: Any, tp: Any) -> Any:
    """`value` (from YAML, JSON or a command line) as the field's type, or a ValueError naming the field."""
    origin, targs = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in targs:
                return None
        return coerce(name, value, next(a for a in targs if a is not type(None)))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif tp is int:
        if isinstance(value, str):
            value = float(value) if re.fullmatch(r"[-+]?\d+(\.0*)?([eE]\+?\d+)?", value.strip()) else value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, os.PathLike)):
            return str(value)
    elif origin in (tuple, list):
        items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)):
            out = [coerce(name, v, targs[0]) for v in items]
            return tuple(out) if origin is tuple else out
    raise ValueError(f"{name}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def load_config(path: str | os.PathLike) -> dict:
    """A config file: JSON (.json) or YAML (anything else), one mapping of field names to values."""
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        cfg = json.loads(text)
    else:
        import yaml

        cfg = yaml.safe_load(text)
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(cfg).__name__}")
    return cfg


def make_args(cls, *layers: tuple[str, dict]):
    """cls's defaults overridden by each (source, mapping) in turn: a config file, then command-line
    flags. Keys may use dashes or underscores; an unknown key raises a ValueError naming its source."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for source, layer in layers:
        for key, value in layer.items():
            name = key.replace("-", "_")
            if name not in hints:
                close = difflib.get_close_matches(name, list(hints), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"{source}: unknown option {key!r} for {cls.__module__}.{cls.__name__}{hint}")
            values[name] = coerce(name, value, hints[name])
    return cls(**values)


def args_to_dict(args) -> dict:
    """Plain values of the arguments (a Market given as `data` becomes its description)."""
    out = {}
    for f in dataclasses.fields(args):
        v = getattr(args, f.name)
        if not (v is None or isinstance(v, (bool, int, float, str))):
            v = list(v) if isinstance(v, (tuple, list)) else f"<{type(v).__name__}>"
        out[f.name] = v
    return out
