"""A local exchange that speaks Binance's spot or USD-M futures API over a replayed dataset
(``trader-sim serve``).

For tests and rehearsals of live trading through ccxt, with no internet. ``LocalExchange``:

* replays a recorded dataset (``replay``): the exact L2 book rebuilt from its events with the C++
  ``OrderBook``, its trades and bookTickers, at ``speed`` x real time or stepped by hand;
* serves the REST endpoints ccxt's ``binance`` uses (``rest``) and the websocket streams ccxt.pro's
  ``binance`` uses (``streams``): the depth diff stream carries the dataset's own update ids, so it
  chains onto ``GET /api/v3/depth``'s ``lastUpdateId`` and ccxt's sequence checks pass; the spot
  user-data stream (execution reports, balances) over the WebSocket API (``userdata``);
* with ``market="usdm"`` (a USD-M recording, or ``--market usdm``): the futures API ccxt's
  ``binanceusdm`` uses instead (``fapi``: REST; ``futures``: the engine on margin, one-way positions,
  funding; ``positions``: entry price, PnL, liquidation price; ``futures_userdata``: the listenKey
  stream), market streams under ``/fstream``;
* refuses malformed input as Binance does, with a 400 and its code, never an HTTP 500 (which ccxt
  reads as a network error): numbers not in Binance's decimal form (``amounts.LEGAL_DECIMAL``, -1100),
  over the PRICE_FILTER / LOT_SIZE maxima (-1013), bodies or escapes that are not UTF-8 (-1100);
* matches orders against the replayed book and keeps balances per API key (``matching`` documents
  the fill rules); checks signatures, API keys and timestamps as Binance does (``auth``);
* injects faults on request (``faults``): latency, 429 with Retry-After, 5xx, responses dropped after
  an order was accepted, websocket disconnects, gaps in the diff stream; seeded; and on call,
  ``LocalExchange.drop_user_streams()`` (user-data stream drop).

Times: market data carries the dataset's exchange times (depth ``E``, trade ``T``); order and fill
times are the replay clock on the same axis (so they line up with the data, in 2024 for the sample).
``GET /api/v3/time`` and the ``timestamp``/``recvWindow`` check use the wall clock, because clients
sign with their wall clock.

Point a ccxt client at it with ``ccxt.binance({"apiKey": k, "secret": s, **ex.ccxt_config()})`` (or
``urls={"api": ccxt_urls(http_url, ws_url)}``): every ccxt endpoint URL, futures and ws-api included,
is rewritten to this server, so nothing can reach a real exchange by accident.
"""

from trader.venue.faults import Faults, FaultStats
from trader.venue.server import LocalExchange, ccxt_urls, split_symbol

__all__ = ["FaultStats", "Faults", "LocalExchange", "ccxt_urls", "split_symbol"]
