"""The env's options as command-line flags, built from the one declaration (trader.sim.spec), for
every command that sets them (`trader train`, `trader evaluate`, `trader backtest`).

Flag names are the option names with dashes; an option in nanoseconds is given in milliseconds on the
command line (`order_latency_ns` -> `--order-latency-ms`), the unit people think in for exchange
latency. Every flag defaults to None (unset), so a config file, a resumed run's saved options or the
learner's own default decide; the help shows the env's default.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import click

from trader.sim import spec

# Options set from the market (its grid) or by the command (the episode window): never flags.
NOT_FLAGS = ("tick_size", "lot_size", "start_min", "start_max")
_NS_PER_MS = 1_000_000
# The move guard (cpp/env/move_guard.h), a risk rule of the execution path: `trader backtest` and `trader live` may set
# it for a run that trained without it (or change the run's), as they may its costs.
GUARD_OPTIONS = ("guard_window_ns", "guard_sigmas", "guard_halflife_ns", "guard_hold_ns", "guard_sides")
# The execution path's risk rules that `trader backtest` may set over a run's: the move guard, a tighter position cap,
# a longest holding time and quoting a position out at the touch (`trader live` has its own --max-position).
RISK_OPTIONS = (*GUARD_OPTIONS, "position_cap_trades", "max_hold_ns", "quote_exit_touch")
# Those that `trader live` may set over a run's at launch (its position limit is its own --max-position).
LIVE_RISK_OPTIONS = (*GUARD_OPTIONS, "max_hold_ns", "quote_exit_touch")


def flag_name(option: spec.Option) -> str:
    """`--order-latency-ms` for order_latency_ns; `--taker-fee-bps` for taker_fee_bps."""
    name = option.name[:-3] + "_ms" if option.unit == "ns" else option.name
    return "--" + name.replace("_", "-")


def param_name(option: spec.Option) -> str:
    """The click parameter (Python) name of an option's flag."""
    return flag_name(option)[2:].replace("-", "_")


def _option(o: spec.Option, default_note: str | None) -> Callable:
    unit = "ms" if o.unit == "ns" else o.unit
    default = o.default / _NS_PER_MS if o.unit == "ns" else o.default
    shown = default_note or (default if o.type is not bool else ("on" if default else "off"))
    help_text = f"trader env: {o.doc}" + (f" [{unit}]" if unit else "") + f" [default: {shown}]"
    if o.type is bool:
        flag = flag_name(o)
        return click.option(f"{flag}/--no-{flag[2:]}", param_name(o), default=None, help=help_text)
    if o.choices:
        kind = click.Choice(o.choices)
    elif o.unit == "ns":
        kind = click.FloatRange(min=0)  # ms, converted to whole ns
    else:
        kind = o.type
    return click.option(flag_name(o), param_name(o), type=kind, default=None, help=help_text)


def env_options(names: Iterable[str] | None = None, default_note: str | None = None) -> Callable:
    """A decorator adding the flags of `names` (default: every option but NOT_FLAGS), in the spec's order;
    `default_note` replaces the env's default in the help (e.g. "the run's")."""
    wanted = None if names is None else set(names)
    chosen = [o for o in spec.options() if o.name not in NOT_FLAGS and (wanted is None or o.name in wanted)]
    if wanted is not None and len(chosen) != len(wanted):
        raise ValueError(f"env_options: unknown options {sorted(wanted - {o.name for o in chosen})}")

    def apply(command: Callable) -> Callable:
        for o in reversed(chosen):  # click lists options in decoration order, last applied first
            command = _option(o, default_note)(command)
        return command
    return apply


def pop_env_values(params: dict[str, Any]) -> dict[str, Any]:
    """Remove the env flags from a click command's parameters; returns the ones given, as env options
    (option names, spec units: ms -> ns)."""
    out = {}
    for o in spec.options():
        if o.name in NOT_FLAGS:
            continue
        value = params.pop(param_name(o), None)
        if value is not None:
            out[o.name] = round(value * _NS_PER_MS) if o.unit == "ns" else value
    return out


def flag_message(message: str) -> str:
    """An env error ("taker_fee_bps: expected ...", "quote_min_ticks / quote_levels: ...", from
    trader.sim.spec.check_config) naming the flags instead of the options."""
    names, sep, rest = message.partition(": ")
    by_name = {o.name: o for o in spec.options() if o.name not in NOT_FLAGS}
    parts = [p.strip() for p in names.split(" / ")]
    if not sep or not all(p in by_name for p in parts):
        return message
    ns = any(by_name[p].unit == "ns" for p in parts) and " ns" in rest  # the message quotes values in ns
    return " / ".join(flag_name(by_name[p]) for p in parts) + ": " + rest + (" (the value in ns)" if ns else "")
