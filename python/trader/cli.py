"""`trader`: the user-facing command group. Market-data tools are also under `trader data`."""

from __future__ import annotations

import click

from trader import errors
from trader.backtest.cli import backtest
from trader.data.cli import data
from trader.evaluate.cli import evaluate
from trader.live.cli import live, record
from trader.nn.cli import embed, train_encoder
from trader.rl.cli import train


@click.group(cls=errors.Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(package_name="trader")
def main() -> None:
    """trader: reinforcement-learning trading on crypto limit order books.

    Exit status: 0 ok, 1 failed run, 2 bad usage or input, 130 interrupted."""


main.add_command(data)
main.add_command(train_encoder)
main.add_command(embed)
main.add_command(train)
main.add_command(backtest)
main.add_command(evaluate)
main.add_command(live)
main.add_command(record)

if __name__ == "__main__":
    main()
