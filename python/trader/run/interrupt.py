"""InterruptWatcher: turn SIGTERM, SIGINT and a spot-instance interruption notice into a flag that a
training loop checks once per iteration, so it can write a final checkpoint and exit cleanly; the
reason every rank of a data-parallel run stops for (`stop_reason`) and the exit status that follows.

    with InterruptWatcher() as stop:            # spot polling on when TRADER_SPOT_METADATA_URL is set
        while step < total and not stop.should_stop:
            ...
        store.save(step, ...)                    # the final save; stop.reason says why

Signals: the handlers set the flag and return, so the loop goes on to its next check. A second SIGINT
(Ctrl-C twice) raises KeyboardInterrupt for someone who does not want to wait. The previous handlers
come back on exit. Handlers can only be installed from the main thread; elsewhere the watcher warns and
only polls.

Spot notices: with a metadata address (the ``metadata_url`` argument, else the environment variable
TRADER_SPOT_METADATA_URL; "aws" stands for http://169.254.169.254), a daemon thread polls
``{address}/latest/meta-data/spot/instance-action`` every ``poll_s`` seconds: 404 while none is
scheduled, 200 with {"action": "terminate"|"stop"|"hibernate", "time": ...} once the instance is to be
reclaimed (about two minutes ahead). IMDSv2 is used when the service hands out a token
(PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds), IMDSv1 otherwise. Polling is OFF
unless an address is configured: the link-local metadata address is never contacted by default. An
address with a path other than "/" is taken as the full notice URL. Proxies are never used.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger("trader.run")

ENV_METADATA_URL = "TRADER_SPOT_METADATA_URL"
AWS_METADATA_URL = "http://169.254.169.254"
SPOT_PATH = "/latest/meta-data/spot/instance-action"
TOKEN_PATH = "/latest/api/token"
SPOT_REASON = "spot interruption"
_OFF = {"", "0", "off", "none", "false", "no"}


def resolve_metadata_url(metadata_url: str | None = None) -> str | None:
    """The spot notice URL to poll, or None when polling is off: ``metadata_url`` if given (""/"off"
    turn it off), else TRADER_SPOT_METADATA_URL, else None."""
    value = metadata_url if metadata_url is not None else os.environ.get(ENV_METADATA_URL)
    if value is None or value.strip().lower() in _OFF:
        return None
    value = value.strip()
    if value.lower() == "aws":
        value = AWS_METADATA_URL
    parts = urlsplit(value if "://" in value else f"http://{value}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"spot metadata address {value!r}: expected http://host[:port][/path]")
    path = parts.path if parts.path not in ("", "/") else SPOT_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class InterruptWatcher:
    """Context manager: ``should_stop`` turns True on SIGTERM, SIGINT (``signals``) or a spot
    interruption notice; ``reason`` says which ("SIGTERM", "SIGINT", "spot interruption", or what
    ``request_stop`` was given); ``notice`` holds the spot notice's JSON."""

    def __init__(self, metadata_url: str | None = None, poll_s: float = 5.0, *,
                 signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT), timeout_s: float = 2.0,
                 token_ttl_s: int = 21600) -> None:
        self.url = resolve_metadata_url(metadata_url)
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self.poll_s = float(poll_s)
        self.timeout_s = float(timeout_s)
        self.token_ttl_s = int(token_ttl_s)
        self.signals = tuple(signals)
        self._stop = False
        self._reason: str | None = None
        self._notice: dict[str, Any] | None = None
        self._signal_counts: dict[int, int] = {}
        self._previous: dict[int, Any] = {}
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()
        self._token: str | None = None
        self._token_expires = 0.0
        self._imds_v1 = False
        self.polls = 0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if self.url:
            parts = urlsplit(self.url)
            self._token_url: str | None = urlunsplit((parts.scheme, parts.netloc, TOKEN_PATH, "", ""))
        else:
            self._token_url = None

    # ---- state ----------------------------------------------------------------------------------
    @property
    def should_stop(self) -> bool:
        return self._stop

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def notice(self) -> dict[str, Any] | None:
        return self._notice

    @property
    def polling(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self, reason: str = "requested") -> None:
        """Set the flag by hand (the first reason given wins)."""
        if not self._stop:
            self._reason = reason
            self._stop = True

    # ---- context --------------------------------------------------------------------------------
    def __enter__(self) -> "InterruptWatcher":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)
        else:
            log.warning("InterruptWatcher entered outside the main thread: signals are not watched")
        if self.url:
            self._quit.clear()
            self._thread = threading.Thread(target=self._poll_loop, name="spot-interruption-poller", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> bool:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s * 2 + 1)
            self._thread = None
        return False

    def _on_signal(self, signum: int, frame: Any) -> None:
        count = self._signal_counts[signum] = self._signal_counts.get(signum, 0) + 1
        if signum == signal.SIGINT and count > 1:
            raise KeyboardInterrupt
        self.request_stop(signal.Signals(signum).name)

    # ---- spot notices ---------------------------------------------------------------------------
    def _request(self, url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(url, method=method, headers=headers or {})
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, b""

    def _get_token(self) -> str | None:
        if self._imds_v1 or self._token_url is None:
            return None
        if self._token and time.monotonic() < self._token_expires:
            return self._token
        status, body = self._request(self._token_url, "PUT",
                                     {"X-aws-ec2-metadata-token-ttl-seconds": str(self.token_ttl_s)})
        if status == 200 and body:
            self._token = body.decode().strip()
            self._token_expires = time.monotonic() + max(1, self.token_ttl_s - 60)
            return self._token
        if 400 <= status < 500 and status != 429:
            log.info("spot metadata: no IMDSv2 token (HTTP %s); using IMDSv1", status)
            self._imds_v1 = True
        return None

    def poll_once(self) -> dict[str, Any] | None:
        """Ask the metadata service once; on a notice set the flag and return the notice."""
        if not self.url:
            return None
        self.polls += 1
        for _ in range(2):
            token = self._get_token()
            status, body = self._request(self.url, headers={"X-aws-ec2-metadata-token": token} if token else {})
            if status == 401 and token:  # expired or revoked token: get a new one once
                self._token = None
                continue
            break
        if status != 200:
            if status != 404:
                log.debug("spot metadata: HTTP %s from %s", status, self.url)
            return None
        try:
            notice = json.loads(body)
        except ValueError:
            notice = {"raw": body.decode(errors="replace")}
        if not isinstance(notice, dict):
            notice = {"raw": notice}
        self._notice = notice
        if not self._stop:
            log.warning("spot interruption notice: %s", notice)
        self.request_stop(SPOT_REASON)
        return notice

    def _poll_loop(self) -> None:
        while not self._quit.is_set():
            try:
                if self.poll_once() is not None:
                    return
            except Exception as e:  # network trouble: keep polling
                log.debug("spot metadata poll failed: %s", e)
            self._quit.wait(self.poll_s)


class TorchrunWatcher(InterruptWatcher):
    """Under torchrun a Ctrl-C reaches a worker twice (from the terminal and forwarded by the agent):
    a second SIGINT within 2 s counts as the same one."""

    _first_sigint: float | None = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum != signal.SIGINT:
            return super()._on_signal(signum, frame)
        now = time.monotonic()
        if self._first_sigint is None:
            self._first_sigint = now
            self.request_stop("SIGINT")
        elif now - self._first_sigint >= 2.0:  # a real second Ctrl-C: do not wait for the save
            raise KeyboardInterrupt


def watcher(metadata_url: str | None, poll_s: float, dist) -> InterruptWatcher:
    """The watcher of a training loop (spot polling when `metadata_url` or TRADER_SPOT_METADATA_URL is
    set); a TorchrunWatcher for a rank of a data-parallel run (`dist`, a trader.run.distributed.Dist)."""
    kind = TorchrunWatcher if dist.enabled else InterruptWatcher
    return kind(metadata_url=metadata_url, poll_s=poll_s)


def stop_reason(watch: InterruptWatcher, dist) -> str | None:
    """None while no rank is asked to stop; else, on every rank, the first rank's reason (one all-reduce
    an iteration, so that every rank leaves the loop at the same iteration)."""
    if not dist.any(watch.should_stop):
        return None
    return next((r for r in dist.all_gather(watch.reason) if r), "stop requested")


def exit_code(reason: str | None) -> int:
    """The exit status of a run that stopped for `reason`: 0 when it finished or was asked to stop by
    SIGTERM or a spot notice (the checkpoint is saved, the scheduler expects a clean exit), 130 for SIGINT."""
    return 130 if reason == "SIGINT" else 0
