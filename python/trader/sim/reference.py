"""Pure-Python reference of the C++ trading env (cpp/env/trading_env.{h,cpp}): the readable spec.

It is written out step by step, event by event, in plain Python with the same order of operations,
the same float64 accounting and the same random draws (splitmix64 + Lemire multiply-shift) as the C++
``TradingEnv``, so that the two give the same observations, rewards and account states step for step
(tests/test_reference_env.py). Its market stream comes from its own Python replay of the events
(trader.sim.reference_stream), not from the C++ builder. About 100x slower than the C++ env.

One step (cursor c = the book row the agents observed, T_c = ts[c]):
  1. with K > 1 agents a seeded random priority (Fisher-Yates, K - 1 draws) orders them;
  2. each agent's action becomes orders, agents in priority order:
     - discrete / continuous: a market order (signed lots) due at the first row whose time is
       >= T_c + order_latency_ns (row c with latency 0), sized so that the position expected when
       every pending market order fills moves as asked, within the position limit;
     - quote / quote_continuous: optionally a market order to flatten, then per side the grid index
       (trader.sim.spec.encode_quote): the same price as the agent's current order keeps it (and its
       queue position); otherwise the current order is cancelled (effective at T_c +
       cancel_latency_ns; it can still fill until then) and a post-only order of min(trade size,
       room under the position limit counting this side's resting lots) is sent; it reaches the
       exchange at T_c + order_latency_ns. Its level's size and the opposite levels crossing it are
       read from row c and followed through the stream;
     - quote_exit_touch: while the agent holds a position, the side that reduces it takes grid index 0,
       whatever the action asks for that side;
     - max_hold_ns: an agent whose position was opened (from flat, or across zero) at a row at least
       max_hold_ns before T_c sends a market order that closes it (with the quotes its action asks; for
       market-order actions instead of the action's order);
     - while the move guard bars a side at row c (trader.sim.reference_guard: both, or the position against
       the move), no order opens or adds to a position there: a market order is clipped toward flat, such a
       quote is not sent (its order cancelled), one that reduces a barred position is sized within flat;
  3. market orders due at row c walk row c's levels (taker fee), agents in priority order, sharing
     the shown liquidity; depth the book does not show is not filled;
  4. the stream records between rows c and c + 1, in file order. Before a record with exch_ts > an
     order's cancel time it is removed; before one with exch_ts > its arrival it goes live: rejected
     (counted) if an opposite level crosses it (post-only), else it joins the back of its level.
     Then a level change at its price or a trade at its price moves it (trader.sim.reference_queue);
     a trade through its price, or an opposite level crossing it, fills it in full at its price;
     maker fills pay maker_fee_bps (negative = rebate);
  5. the cursor moves to c + 1; an agent whose position left flat (or crossed zero) during the step
     opened it at T_{c+1}; equity marked at row c + 1's mid; reward = change of equity net of
     fees (pnl), minus inventory_penalty_bps of the max-position notional times (q / q_max)^2, or
     minus max(0, eta * q * change of mid) (dampened, Spooner et al. 2018), or (markout) only this
     step's fills, cash paid net of fees against their lots at the mid of the first row markout_ns
     after row c + 1's time (the episode's last row if sooner; with markout_detrend less the dataset's
     drift over that time), plus markout_inventory_weight of the lots held before the step's fills
     times the undetrended later mid's change since the last step, minus the penalty above too
     (markout_penalty); times reward_scale (trader.sim.reference_reward).

Several datasets (``markets=``, as ``_core.EnvPool.from_markets``): a reset draws one number below the
total of the datasets' episode starts; it picks the dataset (weighted by its number of starts) and the
start inside it; the episode stays in that dataset and trades in its tick and lot size (issue 13).

Differences from a C++ env in a pool: no autoreset (call reset(); without a seed it draws the next
start from the env's own random stream, exactly as the C++ autoreset does).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from trader.sim import spec
from trader.sim.reference_actions import parse_action, quote_fields
from trader.sim.reference_queue import NEVER as _NEVER
from trader.sim.reference_queue import LimitOrder, on_depth, on_trade_at_price
from trader.sim.reference_reward import agent_reward, later_marks
from trader.sim.reference_data import MARKOUT_REWARDS, load_datasets
from trader.sim.reference_guard import barred, toward_flat
from trader.sim.reference_numbers import MASK64 as _MASK64, below, llround, splitmix64

__all__ = ["ReferenceTradingEnv", "below", "llround", "splitmix64"]

LEVEL_BID, LEVEL_ASK, TRADE_BUY, TRADE_SELL = 0, 1, 2, 3


class _Agent:
    def __init__(self, cash: float) -> None:
        self.position = 0
        self.cash = cash
        self.cost = 0.0  # quote paid for the open position (average-cost accounting)
        self.fees = self.maker_fees = self.taker_fees = 0.0
        self.equity = cash
        self.cash_at_step = cash  # cash when the step began (the markout reward)
        self.episode_return = 0.0
        self.quote_seq = [-1, -1]    # current bid / ask order
        self.pending: list[list[int]] = []  # market orders [due row, signed lots], FIFO
        self.position_at_step = 0  # position when the step began
        self.held_since = -1  # ts (ns) of the row at which the position was opened since flat; -1: flat
        self.clear_step()

    def clear_step(self) -> None:
        self.filled = self.maker_filled = self.taker_filled = self.unfilled = self.quoted = self.rejected = 0


class ReferenceTradingEnv(gym.Env):
    """One trading env with K agents, step-for-step equal to env ``env_id`` of
    ``trader._core.EnvPool(book, features, N, B, threads, seed, ts=ts, records=..., starts=...,
    **config)``. ``records`` / ``starts``: the stream from trader.sim.reference_stream (tuples
    (exch_ts, price, qty, kind, prev)), needed by the quote modes."""

    metadata = {"render_modes": []}

    def __init__(self, book: np.ndarray | None = None, features: np.ndarray | None = None, seed: int = 0,
                 env_id: int = 0, *, ts=None, records=None, starts=None, markets: list[dict] | None = None,
                 **config: Any):
        super().__init__()
        self.cfg = cfg = spec.check_config(**config)
        self.env_id = int(env_id)
        if markets is None:
            markets = [dict(name="", book=book, features=features, ts=ts, records=records, starts=starts,
                            tick_size=cfg["tick_size"], lot_size=cfg["lot_size"], start_min=cfg["start_min"],
                            start_max=cfg["start_max"])]
        elif book is not None or features is not None:
            raise ValueError("markets: pass either book and features or markets")
        self.datasets, self.total_starts = load_datasets(cfg, markets)  # per dataset: the attributes it sets
        self._use_dataset(0)
        self.K = K = cfg["num_agents"]
        self.quoting = cfg["actions"].startswith("quote")
        self.observation_space, self.action_space = spec.spaces(cfg, self.dim)
        self.agents = [_Agent(cfg["initial_cash"]) for _ in range(K)]
        self.orders: list[LimitOrder] = []
        self.cursor = self.steps = self.rng = self.next_seq = 0
        self.later_mark = 0.0  # the markout rewards' last later mid (reference_reward.Later.raw)
        self.next_due = _NEVER
        self.needs_reset = True
        self.reseed(seed + self.env_id)

    def _use_dataset(self, i: int) -> None:
        self.__dict__.update(self.datasets[i])

    # ------------------------------------------------------------------ random stream

    def reseed(self, seed: int) -> None:
        self.rng = int(seed) & _MASK64
        self.needs_reset = True

    def _next_random(self) -> int:
        self.rng, r = splitmix64(self.rng)
        return r

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.reseed(seed + self.env_id)
        cfg = self.cfg
        u = below(self._next_random(), self.total_starts)
        self._use_dataset(max(i for i, d in enumerate(self.datasets) if d["offset"] <= u))
        self.cursor = self.start_min + u - self.offset
        self.steps = 0
        self.needs_reset = False
        self.agents = [_Agent(cfg["initial_cash"]) for _ in range(self.K)]
        self.orders = []
        self.next_due = _NEVER
        return self._observation(), self._info()

    def step(self, action):
        if self.needs_reset:
            raise RuntimeError("step: the episode has ended (or never started); call reset() first")
        cfg, K = self.cfg, self.K
        actions = parse_action(action, self.cfg, self.K)
        priority = list(range(K))
        if K > 1:
            for k in range(K - 1, 0, -1):  # Fisher-Yates
                j = below(self._next_random(), k + 1)
                priority[k], priority[j] = priority[j], priority[k]
        mark_before = self.mid[self.cursor] * self.ntl
        # 2. actions -> orders
        for k in priority:
            a = self.agents[k]
            a.clear_step()
            a.cash_at_step = a.cash
            a.position_at_step = a.position
            expired = self._hold_expired(a)  # closed instead of what the action asks (market orders) or beside it
            if not self.quoting:
                self._send_market(a, self._closing_lots(a) if expired
                                  else self._order_from_action(a, actions[k]))
                continue
            bid_idx, ask_idx, flatten = quote_fields(actions[k], cfg, a.position)
            self._send_market(a, self._closing_lots(a) if flatten or expired else 0)
            self._quote(k, bid_idx, ask_idx)
        # 3. market orders due now walk this row
        consumed = {True: [0] * self.levels, False: [0] * self.levels}  # buy side -> ask levels taken
        row_levels = self.book[self.cursor].tolist()
        for k in priority:
            a = self.agents[k]
            while a.pending and a.pending[0][0] <= self.cursor:
                self._execute(a, a.pending.pop(0)[1], row_levels, consumed)
        # 4. the market between this row and the next
        if self.orders:
            self._replay_segment(self.cursor)
        # 5. advance, mark, reward
        self.cursor += 1
        self.steps += 1
        mark = self.mid[self.cursor] * self.ntl
        at = None
        if cfg["reward"] in MARKOUT_REWARDS:
            at = later_marks(self, mark, self.later_mark)
            self.later_mark = at.raw
        rewards, ruined = [], False
        for a in self.agents:
            if cfg["max_hold_ns"] > 0:
                self._track_hold(a)
            equity = a.cash + float(a.position) * mark
            r = agent_reward(cfg, a, equity, mark, mark_before, at, self.max_lots)
            r *= cfg["reward_scale"]
            a.equity = equity
            a.episode_return += r
            rewards.append(r)
            ruined = ruined or equity < cfg["ruin_fraction"] * cfg["initial_cash"]
        truncated = (not ruined) and self.steps >= cfg["horizon"]
        if ruined or truncated:
            self.needs_reset = True
            for a in self.agents:  # market orders still in flight are cancelled with the episode
                a.unfilled += sum(abs(lots) for _, lots in a.pending)
        reward = np.asarray(rewards, dtype=np.float32)
        return self._observation(), reward[0] if K == 1 else reward, bool(ruined), bool(truncated), self._info()

    # ------------------------------------------------------------------ actions

    def _pending_lots(self, a: _Agent) -> int:
        return sum(lots for _, lots in a.pending)

    def _closing_lots(self, a: _Agent) -> int:  # TradingEnv::closing_lots (flatten, max_hold_ns)
        return -(a.position + self._pending_lots(a))

    def _order_from_action(self, a: _Agent, action) -> int:
        expected = a.position + self._pending_lots(a)  # as if every pending order fills
        if self.cfg["actions"] == "continuous":
            target = llround(action * float(self.max_lots))
        elif action == 1:
            target = expected + self.trade_lots
        elif action == 2:
            target = expected - self.trade_lots
        else:
            return 0
        target = min(max(target, self.min_lots), self.hi_lots)
        target = toward_flat(target, expected, self._guard_bars())
        return target - expected

    def _hold_expired(self, a: _Agent) -> bool:
        """max_hold_ns: the agent's position has been held that long at the cursor's row, so it is closed."""
        return (self.cfg["max_hold_ns"] > 0 and a.position != 0 and a.held_since >= 0
                and self.ts[self.cursor] - a.held_since >= self.cfg["max_hold_ns"])

    def _track_hold(self, a: _Agent) -> None:
        """max_hold_ns: a position that left flat (or crossed zero) during the step was opened at the cursor's row."""
        if a.position == 0:
            a.held_since = -1
        elif a.position_at_step == 0 or (a.position_at_step > 0) != (a.position > 0) or a.held_since < 0:
            a.held_since = self.ts[self.cursor]

    def _guard_bars(self) -> int:
        """What the move guard bars at the cursor's row: NO_LONG | NO_SHORT bits (trader.sim.reference_guard)."""
        return 0 if self.guarded is None else self.guarded[self.cursor]

    def _send_market(self, a: _Agent, lots: int) -> None:
        if lots == 0:
            return
        due = self.cursor
        if self.cfg["order_latency_ns"]:
            arrive = self.ts[due] + self.cfg["order_latency_ns"]
            while due < self.rows and self.ts[due] < arrive:
                due += 1
        a.pending.append([due, lots])

    def _find(self, seq: int) -> LimitOrder | None:
        for o in self.orders:
            if o.seq == seq:
                return None if o.dead else o
        return None

    def _quote(self, k: int, bid_idx: int, ask_idx: int) -> None:
        cfg, a = self.cfg, self.agents[k]
        top = self.book[self.cursor].tolist()
        now = self.ts[self.cursor] if self.ts is not None else 0
        no_long, no_short = barred(self._guard_bars())  # a quote opening or adding to a barred position is not sent
        hi, lo = 0 if no_long else self.hi_lots, 0 if no_short else self.min_lots
        for side, idx in ((0, bid_idx), (1, ask_idx)):
            bid = side == 0
            offset = cfg["quote_min_ticks"] + idx
            adds = no_long and a.position >= 0 if bid else no_short and a.position <= 0
            price = 0 if idx == cfg["quote_levels"] or adds else (top[0][0] - offset if bid else top[0][2] + offset)
            cur = self._find(a.quote_seq[side])
            if cur is not None and cur.price == price:
                continue  # unchanged price: keeps its queue position
            if cur is not None:
                cur.cancel_ts = min(cur.cancel_ts, now + cfg["cancel_latency_ns"])
            a.quote_seq[side] = -1
            if price <= 0:
                continue
            resting = sum(o.leaves for o in self.orders if not o.dead and o.agent == k and o.bid == bid)
            room = hi - a.position - resting if bid else a.position - lo - resting
            lots = min(self.trade_lots, room)
            if lots <= 0:
                continue
            o = LimitOrder(self.next_seq, k, bid, price, lots, now + cfg["order_latency_ns"])
            self.next_seq += 1
            for lv in top:  # grid prices lie inside the shown depth: absent = size 0
                own_px, own_qty, opp_px, opp_qty = (lv[0], lv[1], lv[2], lv[3]) if bid else (lv[2], lv[3], lv[0], lv[1])
                if own_px == price:
                    o.level_qty = own_qty
                if opp_px > 0 and opp_qty > 0 and (opp_px <= price if bid else opp_px >= price):
                    o.crossing += 1
            self.orders.append(o)
            a.quote_seq[side] = o.seq
            a.quoted += lots
            self.next_due = min(self.next_due, o.arrive_ts)
        for o in self.orders:
            self.next_due = min(self.next_due, o.cancel_ts)

    # ------------------------------------------------------------------ fills

    def _book_fill(self, a: _Agent, buy: bool, lots: int, notional: float, fee: float) -> None:
        signed = lots if buy else -lots
        a.fees += fee
        a.cash -= (notional if buy else -notional) + fee
        a.filled += signed
        # average-cost basis: add on a same-side fill, reduce proportionally, restart on a flip
        before, after = a.position, a.position + signed
        if before == 0 or (before > 0) == buy:
            a.cost += notional if buy else -notional
        elif (after > 0) == (before > 0) and after != 0:
            a.cost *= float(after) / float(before)
        else:
            a.cost = float(after) * (notional / float(lots))
        a.position = after

    def _execute(self, a: _Agent, lots: int, levels: list, consumed: dict) -> None:
        """A market order of `lots` (signed) walks the row's levels after earlier agents' fills."""
        buy = lots > 0
        remaining = abs(lots)
        taken = consumed[buy]
        col = 2 if buy else 0
        ticks_x_lots, filled = 0.0, 0
        for l in range(self.levels):
            if remaining <= 0:
                break
            px = levels[l][col]
            if px <= 0:
                break  # the book shows no more levels
            avail = levels[l][col + 1] - taken[l]
            if avail <= 0:
                continue
            take = min(avail, remaining)
            taken[l] += take
            remaining -= take
            filled += take
            ticks_x_lots += float(px) * float(take)
        a.unfilled += remaining
        if filled == 0:
            return
        notional = ticks_x_lots * self.ntl
        fee = notional * self.cfg["taker_fee_bps"] * 1e-4
        a.taker_filled += filled
        a.taker_fees += fee
        self._book_fill(a, buy, filled, notional, fee)

    def _maker_fill(self, o: LimitOrder, lots: int) -> None:
        a = self.agents[o.agent]
        notional = float(o.price) * float(lots) * self.ntl
        fee = notional * self.cfg["maker_fee_bps"] * 1e-4
        a.maker_filled += lots
        a.maker_fees += fee
        self._book_fill(a, o.bid, lots, notional, fee)
        o.leaves -= lots
        if o.leaves == 0:
            o.dead = True

    # ------------------------------------------------------------------ the market stream

    def _replay_segment(self, row: int) -> None:
        for i in range(self.starts[row], self.starts[row + 1]):
            if not self.orders:
                break
            exch_ts, price, qty, kind, prev = self.records[i]
            if exch_ts > self.next_due:
                self._due_orders(exch_ts)
            if kind in (LEVEL_BID, LEVEL_ASK):
                self._on_level(kind == LEVEL_BID, price, qty, prev)
            else:
                self._on_trade(kind == TRADE_SELL, price, qty)
            self.orders = [o for o in self.orders if not o.dead]

    def _due_orders(self, exch_ts: int) -> None:
        """Arrivals and cancels due before a record stamped exch_ts, in seq order; per order in its own
        time order: an arrival before its cancel is seen (rejected if it would cross, else it joins its
        level), then the cancel removes it; a cancel at or before the arrival removes it unseen."""
        self.next_due = _NEVER
        for o in self.orders:
            if o.dead:
                continue
            if not o.live and o.arrive_ts < exch_ts and o.arrive_ts < o.cancel_ts:
                if o.crossing > 0:  # post-only: it would take liquidity
                    o.dead = True
                    self.agents[o.agent].rejected += 1
                    continue
                o.live = True
                o.front = float(o.level_qty)  # the back of its level
                o.cum_trade = 0.0
            if o.cancel_ts < exch_ts:
                o.dead = True
                continue
            if not o.live:
                self.next_due = min(self.next_due, o.arrive_ts)
            self.next_due = min(self.next_due, o.cancel_ts)

    def _on_level(self, bid_level: bool, price: int, qty: int, prev: int) -> None:
        for o in self.orders:
            if o.dead:
                continue
            if o.bid == bid_level:
                if o.price != price:
                    continue
                if o.live:
                    on_depth(o, float(prev), float(qty), self.cfg["queue_model"], self.cfg["queue_power"])
                o.level_qty = qty
            elif (price <= o.price) if o.bid else (price >= o.price):
                o.crossing += (qty > 0) - (prev > 0)
                if o.live and o.crossing > 0:  # the opposite touch reached it
                    self._maker_fill(o, o.leaves)

    def _on_trade(self, hits_bids: bool, price: int, qty: int) -> None:
        remaining = qty
        for o in self.orders:
            if o.dead or not o.live or o.bid != hits_bids:
                continue
            if (o.price > price) if o.bid else (o.price < price):
                self._maker_fill(o, o.leaves)  # traded through
            elif o.price == price:
                fill = on_trade_at_price(o, remaining, qty)
                if fill > 0:
                    self._maker_fill(o, fill)
                    remaining -= fill

    # ------------------------------------------------------------------ output

    def _observation(self) -> np.ndarray:
        cfg, D = self.cfg, self.dim
        mark = self.mid[self.cursor] * self.ntl
        max_notional = float(self.max_lots) * mark
        time_left = np.float32(cfg["horizon"] - self.steps) / np.float32(cfg["horizon"])
        top = self.book[self.cursor, 0].tolist()
        width = D + len(spec.ACCOUNT_FEATURES) + (len(spec.QUOTE_FEATURES) if self.quoting else 0)
        obs = np.zeros((self.K, width), dtype=np.float32)
        for k, a in enumerate(self.agents):
            obs[k, :D] = self.features[self.cursor]
            obs[k, D] = np.float32(float(a.position) / float(self.max_lots))
            obs[k, D + 1] = np.float32((float(a.position) * mark - a.cost) / max_notional * 100.0)
            obs[k, D + 2] = time_left
            if not self.quoting:
                continue
            for side in (0, 1):
                o = self._find(a.quote_seq[side])
                if o is None:
                    continue
                f = D + 3 + 3 * side
                dist = top[0] - o.price if side == 0 else o.price - top[2]
                obs[k, f] = 1.0
                obs[k, f + 1] = np.float32(float(dist) / float(cfg["quote_levels"]))
                obs[k, f + 2] = 1.0 if not o.live else (np.float32(o.front / float(o.level_qty)) if o.level_qty > 0 else 0.0)
        return obs[0] if self.K == 1 else obs

    def _info(self) -> dict[str, Any]:
        """Every per-agent output of trader.sim.spec.OUTPUTS (but obs and reward), t, episode_length."""
        info = {}
        for f in spec.OUTPUTS:
            if not f.per_agent or f.name in ("obs", "reward"):
                continue
            side = 0 if f.name.startswith("bid_") else 1
            values = []
            for a in self.agents:
                o = self._find(a.quote_seq[side]) if f.name.startswith(("bid_", "ask_")) else None
                if f.name.endswith("_price"):
                    values.append(0 if o is None else o.price)
                elif f.name.endswith("_queue"):
                    values.append(0.0 if o is None else (o.front if o.live else math.nan))
                else:
                    values.append(getattr(a, f.name))
            info[f.name] = np.asarray(values, dtype=f.dtype)
        if self.K == 1:
            info = {key: v[0] for key, v in info.items()}
        return info | {"episode_length": self.steps, "t": self.cursor, "guarded": self._guard_bars() != 0}
