"""Exit codes of the `trader` and `trader-sim` commands and their top-level error handler (issue 17).

    0    the command did what it was asked
    1    a failed run (the exchange could not be reached, a run ended with an error, a bug)
    2    bad usage or input: an unknown or out-of-range option, a missing or malformed file
    130  interrupted (Ctrl-C / SIGINT)

`Group` is the click group both commands use: a user mistake that surfaces below the command line
(a ValueError naming the option, a file that is not there, a config file that does not parse) ends
as one `Error: ...` line and exit 2; an unreachable exchange as one line and exit 1; any other
exception is a bug in trader: its traceback, then a line saying so, and exit 1. Its --help lists each
command's whole first sentence (click cuts them at 45 characters).
"""

from __future__ import annotations

import json
import sys
import traceback

import click

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input is wrong, not the code: the messages of trader's own checks
    (ValueError naming the option or file), missing files, malformed YAML / JSON, store errors."""
    import yaml

    from trader.store import StoreError

    return (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            yaml.YAMLError, json.JSONDecodeError, StoreError)


def _network_errors() -> tuple[type[BaseException], ...]:
    out: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import ccxt

        out.append(ccxt.NetworkError)
    except ImportError:
        pass
    try:
        import aiohttp

        out.append(aiohttp.ClientConnectionError)
    except ImportError:
        pass
    return tuple(out)


def _message(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)) and e.filename:
        text = f"{e.filename}: {e.strerror or text}"
    return text


class Group(click.Group):
    """A click group whose commands end with the exit codes above and no traceback for a user mistake.
    `lazy` maps command names to (module, attribute): imported when the command is used or listed, so
    that `trader live` does not wait for torch and scipy to load."""

    lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx):
        return list(dict.fromkeys([*super().list_commands(ctx), *self.lazy]))

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            import importlib

            module, attr = self.lazy[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(INTERRUPTED)
        except _network_errors() as e:
            click.echo(f"Error: the exchange could not be reached: {_message(e)}", err=True)
            sys.exit(FAILED)
        except _user_errors() as e:
            click.echo(f"Error: {_message(e)}", err=True)
            sys.exit(USAGE)
        except Exception:
            traceback.print_exc()
            click.echo("This is a bug in trader (not a mistake in the command line): please report it with the "
                       "command and the traceback above.", err=True)
            sys.exit(FAILED)
