"""Binance's error responses: HTTP status, numeric code and message, as the real API sends them."""

from __future__ import annotations


class BinanceError(Exception):
    """An API error; the REST layer answers it as ``{"code": code, "msg": msg}`` with ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict | None = None):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


# The codes and messages below are those of the Binance spot API (see its "Error codes" page).
def invalid_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def api_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.", 400)


def bad_timestamp() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.", 400)


def timestamp_ahead() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.", 400)


def bad_recv_window() -> BinanceError:
    return BinanceError(-1131, "recvWindow must be less than 60000", 400)


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.", 400)


def illegal_chars(name: str, legal: str | None = None) -> BinanceError:
    tail = f"; legal range is '{legal}'." if legal else "."
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'{tail}", 400)


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.", 400)


def invalid_order_type() -> BinanceError:
    return BinanceError(-1116, "Invalid orderType.", 400)


def invalid_side() -> BinanceError:
    return BinanceError(-1117, "Invalid side.", 400)


def order_side(params: dict) -> str:
    """An order's side parameter, BUY or SELL; otherwise the error Binance answers."""
    side = (params.get("side") or "").upper()
    if not side:
        raise mandatory("side")
    if side not in ("BUY", "SELL"):
        raise invalid_side()
    return side


def invalid_tif() -> BinanceError:
    return BinanceError(-1115, "Invalid timeInForce.", 400)


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}", 400)


def insufficient_balance() -> BinanceError:
    return BinanceError(-2010, "Account has insufficient balance for requested action.", 400)


def duplicate_order() -> BinanceError:
    return BinanceError(-2010, "Duplicate order sent.", 400)


def would_take() -> BinanceError:
    return BinanceError(-2010, "Order would immediately match and take.", 400)


def unknown_order() -> BinanceError:
    """Cancel of an order that is not open (or does not exist)."""
    return BinanceError(-2011, "Unknown order sent.", 400)


def order_not_found() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.", 400)


def too_many_requests(limit: int, window_s: float, retry_after: int) -> BinanceError:
    msg = (f"Too many requests; current limit of IP(127.0.0.1) request weight is {limit} per "
           f"{window_s:g} SECOND. Please use WebSocket Streams for live updates to avoid polling the API.")
    return BinanceError(-1003, msg, 429, {"Retry-After": str(retry_after)})


def bad_param(name: str, value: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; value '{value}'.", 400)


def not_utf8() -> BinanceError:
    return BinanceError(-1100, "Illegal characters found in a parameter: the request is not UTF-8.", 400)


def not_supported(what: str) -> BinanceError:
    return BinanceError(-1000, f"{what} is not supported by the local exchange.", 400)
