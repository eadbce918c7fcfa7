"""The ccxt client that live trading and recording use: ``ccxt.pro`` (async REST plus the websocket URLs).

``base_url`` points every endpoint at a local exchange (``trader-sim serve``; see
``trader.venue.ccxt_urls``), so a rehearsal can never reach a real exchange. ccxt's own
retries stay off (``maxRetriesOnFailure = 0``): a blind resend of an order is exactly what the broker
must never do; it retries itself, by client order id (``trader.live.broker``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def ws_base_for(base_url: str) -> str:
    u = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(u.scheme, u.scheme)
    return urlunsplit((scheme, u.netloc, "", "", ""))


MARKETS = ("spot", "usdm")  # Binance spot (ccxt binance) and USD-M perpetual futures (ccxt binanceusdm)


def make_client(exchange: str = "binance", *, market: str = "spot", base_url: str | None = None, keys=None,
                testnet: bool = False, recv_window_ms: int = 5000, timeout_ms: int = 10_000,
                options: dict | None = None):
    """A ``ccxt.pro`` client (async) for ``exchange`` and ``market`` (spot: ``binance``, usdm:
    ``binanceusdm``); ``keys`` an ApiKeys or None (public only)."""
    import ccxt.pro as ccxtpro

    if exchange != "binance":
        raise ValueError(f"exchange {exchange!r}: only binance is supported (the raw stream format and the order "
                         "protocol are Binance's)")
    if market not in MARKETS:
        raise ValueError(f"market {market!r}: expected one of {', '.join(MARKETS)}")
    usdm = market == "usdm"
    config: dict = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": {"defaultType": "swap" if usdm else "spot", "recvWindow": recv_window_ms,
                    "maxRetriesOnFailure": 0, "fetchOpenOrders": {"warnWithoutSymbol": False},
                    "warnOnFetchOpenOrdersWithoutSymbol": False,
                    "fetchMarkets": {"types": ["linear" if usdm else "spot"]}, "fetchCurrencies": False,
                    **(options or {})},
    }
    if base_url:
        from trader.venue import ccxt_urls

        config["urls"] = {"api": ccxt_urls(base_url.rstrip("/"), ws_base_for(base_url))}
    if keys is not None:
        config.update(keys.ccxt_config())
    client = (ccxtpro.binanceusdm if usdm else ccxtpro.binance)(config)
    if testnet:
        if base_url:
            raise ValueError("--testnet and --base-url: choose one")
        client.set_sandbox_mode(True)
    return client
