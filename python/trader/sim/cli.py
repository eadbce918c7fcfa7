"""`trader-sim`: the market-data commands of trader.data.cli (convert, info, verify), the env pool's
throughput table (bench) and the local Binance-compatible exchange of trader.venue (serve)."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from trader import errors
from trader.data.cli import convert, info, verify

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


class _Group(errors.Group):
    lazy = {"serve": ("trader.venue.cli", "serve")}  # needs aiohttp and ccxt; the data commands must not


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(package_name="trader")
def main() -> None:
    """Market-data tools of trader (convert raw feeds, inspect and verify datasets), the env pool's
    benchmark and a local Binance-compatible exchange."""


main.add_command(convert)
main.add_command(info)
main.add_command(verify)


def _int_list(ctx, param, value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"expected comma-separated integers >= 1, got {value!r}")
    return out


@main.command()
@click.option("--num-envs", default="1,64,1024", show_default=True, callback=_int_list,
              help="Comma-separated env counts.")
@click.option("--threads", default="1,2", show_default=True, callback=_int_list,
              help="Comma-separated thread counts.")
@click.option("--seconds", default=1.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Measuring time per cell (after a warm-up).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench(num_envs, threads, seconds, as_json):
    """Env-steps/s of the C++ trading env pool (bundled sample, 100 ms rows, horizon 500), sync and
    async, next to envpool's CartPole-v1 and the pure-Python reference env in a SyncVectorEnv.

    Sync steps all envs at once; async receives batches of num_envs // 4 and sends actions back to
    the envs in them (with 1 env async is the same as sync). Random actions are generated before
    timing. The Python reference runs only up to 64 envs.
    """
    from trader.sim.bench import machine, run_bench

    def progress(row):
        if not as_json:
            err_console.print(f"  measured num_envs={row['num_envs']} threads={row['threads']} {row['mode']}",
                              highlight=False)

    rows = run_bench(num_envs=num_envs, threads=threads, seconds=seconds, progress=progress)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return

    def sps(v):
        return "n/a" if v is None else f"{v:,.0f}"

    def ratio(v):
        return "n/a" if v is None else f"{v:.1f}x"

    m = machine()
    t = Table(title=f"env-steps/s ({m['cpu']}, {m['cores']} cores; {seconds:g} s a cell)",
              caption="ours: C++ pool, bundled sample, horizon 500; envpool: CartPole-v1, same scheme; "
                      "python ref: ReferenceTradingEnv in SyncVectorEnv, 1 thread, sync, once per env count")
    for col in ("envs", "threads", "mode", "batch", "ours", "envpool CartPole-v1", "python ref", "ours/envpool",
                "ours/python", "note"):
        t.add_column(col, justify="left" if col in ("mode", "note") else "right")
    for r in rows:
        t.add_row(str(r["num_envs"]), str(r["threads"]), r["mode"], str(r["batch_size"]), sps(r["ours_steps_per_s"]),
                  sps(r["envpool_cartpole_steps_per_s"]), sps(r["python_ref_steps_per_s"]),
                  ratio(r["ours_vs_envpool"]), ratio(r["ours_vs_python"]), r["note"])
    console.print(t)


if __name__ == "__main__":
    main()
