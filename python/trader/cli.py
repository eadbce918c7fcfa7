"""`trader`: the user-facing command group. Market-data tools are also under `trader data`."""

from __future__ import annotations

import click

from trader.backtest.cli import backtest
from trader.data.cli import data
from trader.evaluate.cli import evaluate
from trader.live.cli import live, record
from trader.nn.cli import embed, train_encoder
from trader.rl.cli import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trader")
def main() -> None:
    """trader: reinforcement-learning trading on crypto limit order books."""


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
