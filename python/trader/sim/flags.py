"""The trading env's options as learner arguments and command-line flags, generated from the one
declaration of the options (cpp/env/spec.h through trader.sim.spec, issue 11: "declare the env once"):
an option added to the C++ table becomes a field of the learners' `CommonArgs`, a `trader train` flag
and, when listed in BACKTEST, a `trader backtest` override, with no other edit.

    env_fields()                  # dataclass fields of the env options (CommonArgs)
    env_config(args)              # the spec options from a learner's Args or a run's saved arguments
    options(names, default_help)  # click decorators, one per option
    flag_error(e)                 # an env ValueError ("taker_fee_bps: ...") restated with the flag's name

The only place a flag differs from its option is SCALED: latencies are milliseconds on the command line
(issue 11's --order-latency-ms) and nanoseconds in the core; --cancel-latency-ms left unset follows
--order-latency-ms (issue 11: the flag sets "order entry and cancel latency")."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import click

from trader.sim import spec

# set from the market's grid and by the learner / backtest themselves (episode window), not by a flag
NOT_FLAGS = ("tick_size", "lot_size", "start_min", "start_max")
# option -> (argument name, how many of the option's units one of the argument's is)
SCALED = {"order_latency_ns": ("order_latency_ms", 1_000_000), "cancel_latency_ns": ("cancel_latency_ms", 1_000_000)}
FOLLOWS = {"cancel_latency_ms": "order_latency_ms"}  # unset (None): the value of the other argument
# the options `trader backtest` may override on a run's (the rest define what the agent was trained for)
BACKTEST = ("taker_fee_bps", "maker_fee_bps", "order_latency_ms", "cancel_latency_ms", "queue_model", "queue_power")


def _args() -> list[tuple[str, spec.Option, int]]:
    """(argument name, spec option, scale) of every option a user sets."""
    out = []
    for o in spec.options():
        if o.name in NOT_FLAGS:
            continue
        name, scale = SCALED.get(o.name, (o.name, 1))
        out.append((name, o, scale))
    return out


def _default(name: str, o: spec.Option, scale: int) -> Any:
    if name in FOLLOWS:
        return None
    return o.default / scale if scale != 1 else o.default


def _unit(name: str, o: spec.Option, scale: int) -> str:
    unit = "ms" if scale == 1_000_000 else o.unit
    return "" if not unit or name.endswith("_" + unit) else unit


def _doc(name: str, o: spec.Option, scale: int) -> str:
    doc = o.doc
    if name in FOLLOWS:
        doc += f" (unset: as --{FOLLOWS[name].replace('_', '-')})"
    unit = _unit(name, o, scale)
    return doc + (f" [{unit}]" if unit else "")


def env_fields() -> list:
    """Fields for dataclasses.make_dataclass: (name, type, field(default, metadata help))."""
    return [(name, (o.type | None) if name in FOLLOWS else (float if scale != 1 else o.type),
             dataclasses.field(default=_default(name, o, scale), metadata={"help": "trader: " + _doc(name, o, scale)}))
            for name, o, scale in _args()]


def flag(option: str) -> str:
    """The command-line flag of a spec option (order_latency_ns -> --order-latency-ms)."""
    return "--" + SCALED.get(option, (option,))[0].replace("_", "-")


def env_config(args) -> dict[str, Any]:
    """The spec options a learner's Args (or a run's saved arguments, a dict: old names translated by
    spec.from_legacy) set; arguments left None (unset) or absent keep the env defaults."""
    values = dict(args) if isinstance(args, dict) else {f.name: getattr(args, f.name) for f in dataclasses.fields(args)}
    values = spec.from_legacy({k: v for k, v in values.items() if v is not None})
    cfg = {}
    for name, o, scale in _args():
        value = values.get(name)
        if value is None and name in FOLLOWS:
            value = values.get(FOLLOWS[name])
        if value is not None:
            cfg[o.name] = round(value * scale) if scale != 1 else value
    return cfg


def flag_error(e: Exception) -> str:
    """An env ValueError that starts with an option name, restated with its flag."""
    m = re.match(r"(\w+): ", str(e))
    if m and m.group(1) in {o.name for o in spec.options()} and m.group(1) not in NOT_FLAGS:
        return flag(m.group(1)) + str(e)[len(m.group(1)):]
    return str(e)


def options(names: tuple[str, ...] | None = None, default_help: str | None = None):
    """A decorator adding one click option per env argument (`names`: a subset, argument names), each
    defaulting to None (unset); its help ends with `default_help` or the spec's default."""
    def decorate(command):
        for name, o, scale in reversed(_args()):
            if names is not None and name not in names:
                continue
            dash = name.replace("_", "-")
            default = default_help or f"[default: {_default(name, o, scale)}]"
            if name in FOLLOWS and default_help is None:
                default = f"[default: --{FOLLOWS[name].replace('_', '-')}]"
            help_ = f"trader: {_doc(name, o, scale)} {default}"
            if o.type is bool:
                command = click.option(f"--{dash}/--no-{dash}", name, default=None, help=help_)(command)
            else:
                kind = click.Choice(o.choices) if o.choices else (float if scale != 1 else o.type)
                command = click.option(f"--{dash}", name, type=kind, default=None, help=help_)(command)
        return command
    return decorate
