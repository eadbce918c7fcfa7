"""`trader`: the user-facing command group. Market-data tools are also under `trader data`."""

from __future__ import annotations

import click

from trader import errors


class _Group(errors.Group):
    # each command's module is imported when it is used: `trader live` and `trader record` start without
    # torch and scipy, which the learners and the encoder need (seconds on a busy machine)
    lazy = {"data": ("trader.data.cli", "data"), "train-encoder": ("trader.nn.cli", "train_encoder"),
            "embed": ("trader.nn.cli", "embed"), "train": ("trader.rl.cli", "train"),
            "backtest": ("trader.backtest.cli", "backtest"), "evaluate": ("trader.evaluate.cli", "evaluate"),
            "live": ("trader.live.cli", "live"), "record": ("trader.live.cli", "record")}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(package_name="trader")
def main() -> None:
    """trader: reinforcement-learning trading on crypto limit order books.

    Exit status: 0 ok, 1 failed run, 2 bad usage or input, 130 interrupted."""


if __name__ == "__main__":
    main()
