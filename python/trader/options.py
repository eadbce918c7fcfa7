"""Command-line options that every `trader` and `trader-sim` command spells the same way (issue 17):
the output option `-o/--out`, the seed default, the observation's `--feature-set`, and hidden aliases that
keep an old spelling working while saying it is deprecated."""

from __future__ import annotations

import functools

import click
from click.core import ParameterSource

SEED = 0
"""the seed every command starts from when none is given (train's --seed, serve's --seed; the first of
train-encoder's --seeds and of evaluate's seeds 0..N-1)"""


def out_option(help: str, *, file: bool = False, required: bool = False, old: tuple[str, ...] = ()):
    """`-o/--out PATH`, the one spelling of "where this command writes" (a folder, or a file with
    `file=True`); each spelling in `old` (e.g. "--output") still works, hidden, with a note saying so."""
    path = click.Path(dir_okay=False) if file else click.Path(file_okay=False)

    def decorate(f):
        f = _required_after_aliases(f, "out", "-o/--out") if required else f
        for spelling in old:  # around the check above: an old spelling counts as given
            f = deprecated_alias(spelling, "out", "-o/--out", type=path)(f)
        return click.option("-o", "--out", "out", type=path, default=None, help=help)(f)

    return decorate


def feature_set_option(default: str):
    """`--feature-set N`: the observation's book features (trader.sim.features; checked there)."""
    return click.option("--feature-set", type=click.IntRange(min=1), default=None,
                        help="observation features (trader.sim.features): 1 = sizes in base units, 2 = sizes relative "
                             "to the instrument's own depth (scale-free across instruments), 3 = 2 and 1 / 10 / 60 s "
                             f"of trend, trade flow, OFI and volatility [default: {default}]")


def _required_after_aliases(f, name: str, flag: str):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        if kwargs.get(name) is None:
            raise click.UsageError(f"Missing option {flag}.")
        return f(*args, **kwargs)

    return wrapper


def deprecated_alias(old: str, name: str, flag: str, **option):
    """A hidden option `old` that sets the parameter `name` of the option `flag`, printing that `old`
    is deprecated. Put it below the command's decorator (it wraps the command's function)."""
    key = "deprecated_" + old.lstrip("-").replace("-", "_")

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(key)
            if value is not None:
                source = click.get_current_context().get_parameter_source(name)
                if source not in (None, ParameterSource.DEFAULT):
                    raise click.UsageError(f"{old} and {flag}: give one ({old} is the deprecated spelling of {flag})")
                click.echo(f"note: {old} is deprecated; use {flag}", err=True)
                kwargs[name] = value
            return f(*args, **kwargs)

        return click.option(old, key, hidden=True, default=None,
                            help=f"deprecated spelling of {flag}", **option)(wrapper)

    return decorate
