"""Baseline strategies for `trader backtest`, all in one place.

Market-order baselines (the `discrete` and `continuous` action spaces): flat, buy-and-hold and a
top-of-book order-imbalance rule. Market-making baselines (the `quote` action space): a fixed-spread
quoter and Avellaneda-Stoikov (2008), whose parameters are fitted on the training rows only.

A policy is `policy(obs, info) -> actions` for one env with one agent; it may read the market's book
at the row the env shows (`info["t"]`), never a later row.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from trader.backtest.engine import Policy
from trader.data.events import EventFlag, EventKind
from trader.sim.env import Market


# ---- market-order baselines -------------------------------------------------------------------


def flat_policy(continuous: bool) -> Policy:
    def act(obs, info):
        return np.zeros(1, dtype=np.float32) if continuous else np.zeros(1, dtype=np.int64)

    return act


def buy_and_hold_policy(continuous: bool) -> Policy:
    """Go to the maximum long position as fast as the book allows, then hold."""

    def act(obs, info):
        return np.ones(1, dtype=np.float32) if continuous else np.ones(1, dtype=np.int64)

    return act


def imbalance_policy(market: Market, continuous: bool, threshold: float = 0.6) -> Policy:
    """Top-of-book imbalance rule: long when (bid size - ask size) / (bid size + ask size) > threshold,
    short (or flat without shorting) when < -threshold, otherwise keep the position."""
    b = market.book[:, 0, 1].astype(np.float64)
    a = market.book[:, 0, 3].astype(np.float64)
    imb = (b - a) / np.maximum(b + a, 1e-12)

    def act(obs, info):
        x = imb[int(info["t"][0])]
        if continuous:
            pos = float(obs[0, -3])  # position / max position
            target = 1.0 if x > threshold else (-1.0 if x < -threshold else pos)
            return np.array([np.clip(target, -1.0, 1.0)], dtype=np.float32)
        return np.array([1 if x > threshold else (2 if x < -threshold else 0)], dtype=np.int64)

    return act


# ---- Avellaneda-Stoikov: parameters fitted on the training rows -------------------------------


@dataclass(frozen=True)
class IntensityFit:
    """lambda(delta) = a * exp(-kappa * delta): the rate per step at which market orders reach beyond
    delta ticks from the mid (Avellaneda & Stoikov 2008, section 2: a quote delta from the mid is hit
    at the Poisson rate lambda(delta) = A exp(-k delta))."""

    a: float  # per step, at delta = 0
    kappa: float  # per tick
    deltas: np.ndarray  # ticks from the mid: the grid the fit used
    rates: np.ndarray  # fraction of steps in which a market order reached beyond each delta


@dataclass(frozen=True)
class AvellanedaStoikovFit:
    sigma: float  # standard deviation of the mid change per step, ticks
    intensity: IntensityFit
    train_rows: int  # rows [0, train_rows) of the market were used, no later one
    steps_with_trades: int  # steps of those rows in which at least one market order arrived


def mid_volatility(market: Market, train_rows: int) -> float:
    """Standard deviation of the per-step change of the mid price over rows [0, train_rows), in ticks
    (the sigma of Avellaneda & Stoikov 2008, section 2: dS = sigma dW, with one step as the time unit)."""
    if train_rows < 3 or train_rows > len(market.book):
        raise ValueError(f"train_rows: need 3 to {len(market.book)} rows for a volatility, got {train_rows}")
    mid = 0.5 * (market.book[:train_rows, 0, 0] + market.book[:train_rows, 0, 2]).astype(np.float64)
    return float(np.diff(mid).std())


def arrival_depths(market: Market, events: np.ndarray, train_rows: int) -> np.ndarray:
    """For each step k (row k to row k + 1) with k + 1 < train_rows: how far beyond the mid of row k
    the market orders of the step reached, in ticks (buys: price - mid, sells: mid - price; the
    largest of the step; -inf when none arrived). A trade belongs to step k when its timestamp on
    the market's clock (that of its rows: local for a recording without exchange time) lies in
    (ts[k], ts[k + 1]]; trades after row train_rows - 1 are never read. The measure of hftbacktest's
    GLFT market-making tutorial (examples/GLFT Market Making Model and Grid Trading)."""
    if train_rows < 2 or train_rows > len(market.ts):
        raise ValueError(f"train_rows: need 2 to {len(market.ts)} rows, got {train_rows}")
    steps = train_rows - 1
    ts = market.ts[:train_rows]
    trades = events[events["kind"] == EventKind.TRADE]
    t = trades["exch_ts" if market.clock == "exchange" else "local_ts"]
    k = np.searchsorted(ts, t, side="left") - 1  # ts[k] < t <= ts[k + 1]
    keep = (k >= 0) & (k < steps)
    trades, k = trades[keep], k[keep]
    mid = 0.5 * (market.book[k, 0, 0] + market.book[k, 0, 2]).astype(np.float64)
    price = trades["price"].astype(np.float64)
    buyer_aggressor = (trades["flags"] & int(EventFlag.BID)) != 0
    depth = np.full(steps, -np.inf)
    np.maximum.at(depth, k, np.where(buyer_aggressor, price - mid, mid - price))
    return depth


def fit_intensity(depths: np.ndarray, min_steps: int = 10) -> IntensityFit:
    """Least-squares fit of log lambda(delta) = log a - kappa * delta, where lambda(delta) is the
    fraction of steps whose market orders reached beyond delta ticks from the mid (a resting quote
    there would be traded through, whatever its queue). The grid is delta = 0.5, 1.5, ... ticks (a
    quote at the touch of a one-tick book and each tick behind it) up to the last delta exceeded in
    at least min_steps steps (fewer would make the log of the tail mostly noise)."""
    d = np.asarray(depths, dtype=np.float64)
    if len(d) < 1:
        raise ValueError("depths: no steps to fit the trading intensity on")
    reached = np.sort(d[np.isfinite(d)])
    if len(reached) < min_steps:
        raise ValueError(f"trades: market orders arrived in {len(reached)} steps of the training rows, "
                         f"need at least {min_steps} to fit kappa")
    last = reached[len(reached) - min_steps]  # exceeded (>=) in min_steps steps
    deltas = np.arange(0.5, max(last, 0.5), 1.0)
    counts = len(reached) - np.searchsorted(reached, deltas, side="right")  # steps with depth > delta
    if len(deltas) < 2 or counts[1] == 0:
        raise ValueError(f"trades: market orders went beyond 1.5 ticks from the mid in fewer than "
                         f"{min_steps} steps; kappa cannot be fitted")
    deltas, rates = deltas[counts > 0], counts[counts > 0] / float(len(d))
    slope, intercept = np.polyfit(deltas, np.log(rates), 1)
    if slope >= 0:
        raise ValueError(f"trades: the rate of market orders does not fall with the distance from the "
                         f"mid (slope {slope:+.4g} per tick); kappa cannot be fitted")
    return IntensityFit(float(np.exp(intercept)), float(-slope), deltas, rates)


def fit_avellaneda_stoikov(market: Market, events: np.ndarray, train_rows: int) -> AvellanedaStoikovFit:
    """sigma and kappa from rows [0, train_rows) of `market` and the trades between them (events: the
    dataset's event array the market was sampled from)."""
    sigma = mid_volatility(market, train_rows)
    depths = arrival_depths(market, events, train_rows)
    return AvellanedaStoikovFit(sigma, fit_intensity(depths), int(train_rows), int(np.isfinite(depths).sum()))


def avellaneda_stoikov_quotes(mid: float, inventory: float, steps_left: float, sigma: float, kappa: float,
                              gamma: float) -> tuple[float, float]:
    """(bid, ask) prices in ticks, the approximate optimal quotes of Avellaneda & Stoikov 2008
    (section 3, linear in q, exponential utility): reservation price r = s - q gamma sigma^2 (T - t),
    total spread delta_a + delta_b = gamma sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / kappa),
    quotes r -+ spread / 2.
    Units: mid in ticks, inventory q in quote sizes, sigma in ticks per step, T - t in steps, kappa
    per tick, gamma per tick per quote size."""
    if gamma <= 0 or kappa <= 0:
        raise ValueError(f"gamma and kappa must be > 0, got gamma={gamma}, kappa={kappa}")
    risk = gamma * sigma * sigma * max(steps_left, 0.0)
    reservation = mid - inventory * risk
    spread = risk + (2.0 / gamma) * np.log1p(gamma / kappa)
    return reservation - 0.5 * spread, reservation + 0.5 * spread


# ---- market-making baselines (the `quote` action space) ------------------------------------------


@dataclass(frozen=True)
class QuoteGrid:
    """The env's quote grid (trader.sim.spec): per side, offsets quote_min_ticks .. quote_min_ticks +
    quote_levels - 1 ticks from the same-side touch (bid = best bid - offset, ask = best ask + offset);
    index quote_levels = no quote."""

    min_ticks: int
    levels: int

    @classmethod
    def of(cls, env_config: dict) -> QuoteGrid:
        return cls(int(env_config["quote_min_ticks"]), int(env_config["quote_levels"]))

    def index(self, offset: float | None, spread: int) -> int:
        """The grid index nearest to a wanted offset (ticks from the same-side touch; None: no quote).
        Deeper than the grid: its deepest level. Inside the spread: at most spread - 1 ticks inside,
        so that the post-only quote does not cross; when even the innermost level would, no quote."""
        if offset is None:
            return self.levels
        innermost = max(self.min_ticks, 1 - spread)
        deepest = self.min_ticks + self.levels - 1
        if innermost > deepest:
            return self.levels
        return int(np.clip(np.rint(offset), innermost, deepest)) - self.min_ticks

    def action(self, bid_offset: float | None, ask_offset: float | None, spread: int) -> np.ndarray:
        from trader.sim import encode_quote

        a = encode_quote(self.index(bid_offset, spread), self.index(ask_offset, spread), quote_levels=self.levels)
        return np.array([a], dtype=np.int64)


def _inventory_sides(position: int, trade_lots: int, max_lots: int, bid, ask):
    """No bid while a fill would take the position past +max_lots, no ask past -max_lots."""
    return (None if position + trade_lots > max_lots else bid), (None if position - trade_lots < -max_lots else ask)


def fixed_spread_policy(market: Market, grid: QuoteGrid, offset_ticks: int, trade_lots: int,
                        max_lots: int) -> Policy:
    """Quote both sides offset_ticks from each touch (0: at the touch, -1: one tick inside), one quote
    size each, and stop quoting the side that would take |position| past max_lots."""

    def act(obs, info):
        t = int(info["t"][0])
        spread = int(market.book[t, 0, 2] - market.book[t, 0, 0])
        bid, ask = _inventory_sides(int(info["position"][0]), trade_lots, max_lots, offset_ticks, offset_ticks)
        return grid.action(bid, ask, spread)

    return act


def avellaneda_stoikov_policy(market: Market, grid: QuoteGrid, fit: AvellanedaStoikovFit, gamma: float,
                              trade_lots: int, max_lots: int, end_row: int) -> Policy:
    """Avellaneda-Stoikov quotes (avellaneda_stoikov_quotes) with the terminal time T at end_row (the
    end of the backtest), inventory q in quote sizes, mapped onto the grid (QuoteGrid.index); the
    side that would take |position| past max_lots is not quoted."""

    def act(obs, info):
        t = int(info["t"][0])
        best_bid, best_ask = int(market.book[t, 0, 0]), int(market.book[t, 0, 2])
        position = int(info["position"][0])
        bid, ask = avellaneda_stoikov_quotes(0.5 * (best_bid + best_ask), position / trade_lots, end_row - t,
                                             fit.sigma, fit.intensity.kappa, gamma)
        bid_off, ask_off = _inventory_sides(position, trade_lots, max_lots, best_bid - bid, ask - best_ask)
        return grid.action(bid_off, ask_off, best_ask - best_bid)

    return act


def market_making_baselines(market: Market, env_config: dict, end_row: int, offset_ticks: int, gamma: float,
                            fit_market: Market, fit_events: np.ndarray,
                            fit_rows: int) -> tuple[list[tuple[str, Policy]], list[str]]:
    """The fixed-spread quoter and Avellaneda-Stoikov for a quote env over `market` with these options
    (sizes in base units as the env takes them), Avellaneda-Stoikov fitted on rows [0, fit_rows) of
    `fit_market` (its events: `fit_events`), training rows only; with notes saying what was fitted,
    for the report."""
    from trader.sim import spec

    cfg = spec.check_config(**dict(env_config, actions="quote"), tick_size=market.tick_size, lot_size=market.lot_size)
    grid = QuoteGrid.of(cfg)
    trade_lots, max_lots = spec.size_lots(cfg, market.lot_size, spec.reference_price(market.book, market.tick_size))
    policies = [("fixed_spread", fixed_spread_policy(market, grid, offset_ticks, trade_lots, max_lots))]
    notes = [f"fixed_spread: both sides {offset_ticks} tick(s) from the touch, {trade_lots * market.lot_size:g} base "
             f"each, no quote on the side that would pass |position| {max_lots * market.lot_size:g}."]
    # Its parameters are in ticks and steps of the instrument it quotes: fitted on another one they mean nothing.
    if (fit_market.symbol, fit_market.tick_size) != (market.symbol, market.tick_size):
        notes.append(f"avellaneda_stoikov: not run: the training data is another instrument ({fit_market.symbol}, tick "
                     f"{fit_market.tick_size:g}) than the test data ({market.symbol}, tick {market.tick_size:g}), and "
                     "its parameters are in ticks of the instrument it quotes.")
        return policies, notes
    try:
        fit = fit_avellaneda_stoikov(fit_market, fit_events, fit_rows)
    except ValueError as e:  # e.g. no trade sides in the training data: no arrival intensity to fit
        notes.append(f"avellaneda_stoikov: not run: its fit on the training rows failed: {e}")
        return policies, notes
    where = "" if fit_market is market else " of the training dataset"
    policies.append(("avellaneda_stoikov",
                     avellaneda_stoikov_policy(market, grid, fit, gamma, trade_lots, max_lots, end_row)))
    notes.append(
        f"avellaneda_stoikov (2008): fitted on rows 0..{fit_rows - 1}{where} only: sigma {fit.sigma:.4g} ticks per step "
        f"(std of the mid change), kappa {fit.intensity.kappa:.4g} per tick and A {fit.intensity.a:.4g} per step "
        f"(market orders reaching delta ticks beyond the mid, {fit.steps_with_trades} steps with trades); "
        f"gamma {gamma:g} per tick per quote size; T = the last held-out row; quotes mapped to the nearest grid "
        f"offset ({grid.min_ticks}..{grid.min_ticks + grid.levels - 1} ticks from the touch).")
    return policies, notes
