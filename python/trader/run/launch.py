"""The launcher behind `trader train --nproc N` and `trader train-encoder --nproc N`: torchrun over the
same command in N processes (one rank each, see trader.run.distributed), signals passed on to them,
rank 0's result handed back through a file, the command's exit status that of the run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from trader.run.distributed import SAFETY_ENV
from trader.run.interrupt import exit_code

RESULT_FILE_ENV = "TRADER_RESULT_FILE"
"""rank 0 of a launched run writes its result (JSON) here, for the launcher"""

SHUTDOWN_TIMEOUT_S = 150
"""how long torchrun lets the workers write their final checkpoint after a signal (a spot notice
comes two minutes ahead)"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the launched processes: ours (with `extra`), trader importable, and the
    safety settings (NVLink multicast off), which nothing overrides."""
    env = dict(os.environ)
    env.update(extra or {})
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT_S))
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default for several processes, without its banner
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds trader/
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_root, *paths])
    env.update(SAFETY_ENV)
    return env


def torchrun_command(nproc: int, module_args: Sequence[str], port: int | None = None, module: bool = True) -> list[str]:
    """python -m torch.distributed.run --nproc-per-node N --master-port P -m MODULE ARGS... (module=False:
    SCRIPT ARGS...)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(int(nproc)),
            "--nnodes", "1", "--master-addr", "127.0.0.1", "--master-port", str(port or free_port()),
            *(["-m"] if module else []), *module_args]


def launch(nproc: int, module_args: Sequence[str], *, env: Mapping[str, str] | None = None,
           forward: Iterable[int] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)) -> tuple[int, dict | None]:
    """Run `module_args` (e.g. ["trader.cli", "train", ...]) in `nproc` processes under torchrun and
    wait. SIGTERM, SIGINT and SIGHUP sent to this process are passed on to torchrun, which passes them
    to the workers (they save and stop together); torchrun runs in its own session so a Ctrl-C in the
    terminal reaches the workers once. Returns (torchrun's exit status, rank 0's result or None)."""
    fd, result_path = tempfile.mkstemp(prefix="trader-result-", suffix=".json")
    os.close(fd)
    Path(result_path).unlink()
    proc = subprocess.Popen(torchrun_command(nproc, module_args), env=launch_env({**(env or {}),
                                                                                  RESULT_FILE_ENV: result_path}),
                            start_new_session=True)
    received: list[int] = []

    def pass_on(signum, frame):
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {}
    for sig in forward:
        try:
            previous[sig] = signal.signal(sig, pass_on)
        except ValueError:  # not the main thread
            pass
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - handlers above catch SIGINT
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            proc.kill()
    result = None
    try:
        result = json.loads(Path(result_path).read_text())
    except (OSError, ValueError):
        pass
    finally:
        Path(result_path).unlink(missing_ok=True)
    return rc, result


def write_result(result: Mapping[str, Any]) -> None:
    """Rank 0 of a launched run: hand the result to the launcher (no-op outside one)."""
    path = os.environ.get(RESULT_FILE_ENV)
    if not path:
        return
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(result, default=str))
    os.replace(tmp, path)


def command_line(ctx: click.Context, drop: tuple[str, ...] = ("nproc",)) -> list[str]:
    """The options given to this command (on its command line or from the environment), as arguments
    again, without `drop`: what the launched processes run."""
    from click.core import ParameterSource

    argv: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in drop:
            continue
        if ctx.get_parameter_source(param.name) not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        value = ctx.params[param.name]
        if value is None:
            continue
        if param.is_bool_flag and param.secondary_opts:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.is_flag and not param.secondary_opts and isinstance(value, bool):
            if value:
                argv.append(param.opts[0])
        elif param.multiple:
            for v in value:
                argv += [param.opts[0], str(v)]
        else:
            argv += [param.opts[0], str(value)]
    return argv


def relaunch(ctx: click.Context, nproc: int, command: str) -> None:
    """torchrun --nproc-per-node N -m trader.cli COMMAND (this command's options); exit with the run's status."""
    argv = command_line(ctx)
    click.echo(f"launching {nproc} processes: torchrun --nproc-per-node {nproc} -m trader.cli {command} "
               + " ".join(argv))
    rc, result = launch(nproc, ["trader.cli", command, *argv])
    if result is None:
        raise click.ClickException(f"the data-parallel run failed (torchrun exit status {rc}); see the output above")
    code = exit_code(result.get("interrupted"))
    if not result.get("interrupted") and rc != 0:
        code = rc
    sys.exit(code)
