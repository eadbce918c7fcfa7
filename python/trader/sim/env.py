"""Python face of the C++ trading env pool: gymnasium VectorEnv and Env, PettingZoo ParallelEnv.

    env = trader.sim.make(num_envs=1024, num_threads=2)        # gymnasium.vector.VectorEnv
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(actions)

    env = trader.sim.make(num_envs=1024, batch_size=256)      # envpool-style async
    env.async_reset()
    obs, reward, terminated, truncated, info = env.recv()     # info["env_id"]: whose rows these are
    env.send(actions, info["env_id"])

Results are numpy views of the pool's own buffers (no copy): they stay valid until the pool has
written as many rows again as it holds (one more step in sync mode); copy what you keep longer.
Autoreset is gymnasium's NEXT_STEP mode: the step after a terminated or truncated one resets the env
and ignores its action. Units: trade_size and max_position in base currency (e.g. BTC), or
trade_notional and max_position_notional in quote currency (each dataset converts them to its own lots
at the mid of its first row: one size for several instruments), fees in bps, latencies in ns, cash and
equity in quote currency; inside the core everything is ticks and lots.

Options (trader.sim.spec lists them with defaults, units and docs; unknown ones raise ValueError):
actions = discrete (hold/buy/sell market orders), continuous (target position), quote (bid/ask
post-only quotes on a grid of offsets from the touch, `trader.sim.encode_quote`), quote_continuous;
taker_fee_bps / maker_fee_bps (negative maker fee = rebate); order_latency_ns / cancel_latency_ns
against the exchange timestamps; queue_model power (queue_power), log or risk_averse; reward pnl,
inventory_penalty, dampened, markout (each step's fills against the mid markout_ns later) or
markout_penalty (markout minus inventory_penalty's penalty); and the
sizes, limits and episode window.

Resting quotes see every level change and trade between two rows (the market stream the core builds
with `_core.sample_market`), so their queue position and fills follow hftbacktest's queue models;
on data without trades (snapshot-only) only trade-through / touch-cross fills happen:
info["market_has_trades"] says which. info holds every output field of trader.sim.spec.OUTPUTS
(per agent where declared): position, equity, fees (maker_fees, taker_fees), filled (maker_filled,
taker_filled), unfilled, quoted, rejected, bid/ask price and queue ahead.

Many datasets (issue 13): `load_markets` reads several dataset folders, collections or folders of
them; a TradingVectorEnv over a list of Markets draws each episode's dataset with weight its number of
episode starts, then the start, from the env's own seeded generator; the episode stays inside that
dataset (it truncates at the horizon, which never reaches past the dataset's last row) and trades in
its tick and lot size. All datasets need the same depth and feature width.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from trader import _core
from trader.sim import spec
from trader.sim import features as feature_sets

_STEP_FIELDS = ("obs", "reward", "terminated", "truncated")  # the outputs returned outside info


@dataclass
class Market:
    """Book rows, their features and the instrument grid the env trades on."""

    book: np.ndarray  # int64 [T, L, 4] ticks / lots
    features: np.ndarray  # float32 [T, D]
    ts: np.ndarray  # int64 [T] ns, on the sampling clock
    tick_size: float
    lot_size: float
    symbol: str = ""
    # The market stream between rows (from _core.sample_market; None: market orders only):
    # records[starts[c]:starts[c + 1]] = (exch_ts ns, price ticks, qty lots, kind << 56 | previous size)
    records: np.ndarray | None = None  # int64 [E, 4]
    starts: np.ndarray | None = None  # int64 [T + 1]
    name: str = ""  # the dataset folder it came from (names it in errors)
    clock: str = "exchange"  # the clock of ts and of the stream: "local" for a recording without exchange time


def load_market(data=None, *, depth: int = 10, interval_ms: float = 100.0, clock: str = "exchange",
                features=None, feature_set: int | None = None, mirror: bool = False) -> Market:
    """Sample a dataset (default: the bundled sample) on a time grid (interval_ms > 0) or after every
    book message (interval_ms = 0) and build the observation features (set `feature_set` of
    trader.sim.features; None: its DEFAULT_SET).
    Rows before both sides of the book exist are dropped. A recording without exchange time (every
    exch_ts 0) is sampled on its local clock. `features`: None, an array [T, D] aligned with the
    sampled rows, or a path to a .npy file of one. `mirror`: the recording reflected in price, bids <->
    asks (trader.data.events.mirrored), named "NAME (mirrored)"."""
    from trader.data.dataset import Dataset, load_dataset
    from trader.data.events import mirrored

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    if mirror and features is not None:
        raise ValueError("mirror: features given for the recording cannot describe its mirror image")
    events = mirrored(ds.events) if mirror else ds.events
    parts = ds.meta.get("collection")
    if parts:  # one market stream per env: sequences must not be joined across their gaps (issue 13)
        raise ValueError(f"{ds.path}: a collection of {len(parts)} sequences; the env trades one sequence at a "
                         f"time: pass one of its dataset folders (e.g. {ds.path / parts[0].get('name', '')})")
    if clock == "exchange" and len(events) and not events["exch_ts"].any():
        clock = "local"  # the recording has no exchange time (e.g. Bitstamp's 2015 log: meta.json notes it)
    ts, book, flow, records, starts, _ = _core.sample_market(events, depth, int(interval_ms * 1e6), clock)
    valid = (book[:, 0, 0] > 0) & (book[:, 0, 2] > 0)
    first = int(np.argmax(valid)) if valid.any() else len(valid)
    ts, book, flow = ts[first:], np.ascontiguousarray(book[first:]), flow[first:]
    starts = np.ascontiguousarray(starts[first:])
    tick, lot = float(Decimal(ds.meta["tick_size"])), float(Decimal(ds.meta["lot_size"]))
    if features is None:
        feats = feature_sets.features(book, lot, flow, feature_set=feature_sets.DEFAULT_SET if feature_set is None
                                      else feature_set, interval_s=interval_ms / 1000)
    else:
        feats = np.load(features) if isinstance(features, (str, bytes)) or hasattr(features, "__fspath__") else features
        feats = np.asarray(feats)
        if feats.ndim != 2 or len(feats) not in (len(book), len(book) + first):
            raise ValueError(f"features: expected shape [{len(book)}, D] (one row per sampled book row), got {feats.shape}")
        feats = np.ascontiguousarray(feats[-len(book):], dtype=np.float32)
    return Market(book, feats, ts, tick, lot, ds.symbol, records, starts, str(ds.path) + " (mirrored)" * mirror, clock)


def book_spacing_ms(data=None) -> float | None:
    """The median time between the book updates of a dataset (default: the bundled sample), ms, on
    load_market's clock: the finest grid whose consecutive rows differ. None with fewer than two."""
    from trader.data.dataset import Dataset, load_dataset
    from trader.data.events import BOOK_KINDS

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    events = ds.events
    clock = "exch_ts" if events["exch_ts"].any() else "local_ts"
    ts = np.unique(events[clock][np.isin(events["kind"], BOOK_KINDS)])
    return float(np.median(np.diff(ts))) / 1e6 if len(ts) > 2 else None


def dataset_folders(paths) -> list[Path]:
    """The dataset folders behind `paths`: a dataset folder is itself, a collection (index.json) its
    sequences in index order, any other folder the datasets and collections directly inside it (by name)."""
    from trader.data.dataset import INDEX_FILE, META_FILE, load_collection

    out: list[Path] = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if (path / META_FILE).is_file():
            out.append(path)
        elif (path / INDEX_FILE).is_file():
            out.extend(ds.path for ds in load_collection(path))
        elif path.is_dir():
            inner = [p for p in sorted(path.iterdir()) if (p / META_FILE).is_file() or (p / INDEX_FILE).is_file()]
            if not inner:
                raise ValueError(f"{path}: neither a dataset folder (meta.json), a collection (index.json) nor a "
                                 "folder holding any")
            out.extend(dataset_folders(inner))
        else:
            raise ValueError(f"{path}: not a folder")
    if not out:
        raise ValueError("data: no dataset given")
    return out


def load_markets(paths, **kwargs) -> list[Market]:
    """One Market per dataset folder behind `paths` (see dataset_folders); kwargs as load_market's."""
    return [load_market(folder, **kwargs) for folder in dataset_folders(paths)]


def pool_config(market: Market, config: dict) -> dict:
    """Every env option for a pool over `market` (its tick and lot size), parsed and validated."""
    for key in ("tick_size", "lot_size"):
        if key in config:
            raise ValueError(f"{key}: set from the market ({getattr(market, key)}); do not pass it")
    return spec.check_config(**config, tick_size=market.tick_size, lot_size=market.lot_size)


def _market_pool(markets: list[Market], config: dict, num_envs: int, batch: int, num_threads: int, seed: int):
    """The C++ pool and its options over several datasets. start_min / start_max: one value for every
    dataset or a sequence of one per dataset (-1 start_max: the last row that leaves a full horizon)."""
    first = markets[0]
    for m in markets[1:]:
        if m.book.shape[1] != first.book.shape[1] or m.features.shape[1] != first.features.shape[1]:
            raise ValueError(f"{m.name or m.symbol}: {m.book.shape[1]} book levels and {m.features.shape[1]} feature "
                             f"columns, but {first.name or first.symbol} has {first.book.shape[1]} and "
                             f"{first.features.shape[1]}: every dataset of one env needs the same depth and features")
    windows = {}
    for key, default in (("start_min", 0), ("start_max", -1)):
        value = config.pop(key, default)
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * len(markets)
        if len(values) != len(markets):
            raise ValueError(f"{key}: {len(values)} values for {len(markets)} datasets")
        windows[key] = [int(v) for v in values]
    env_config = pool_config(first, config)
    entries = [dict(name=m.name or m.symbol, book=m.book, features=m.features, ts=m.ts, records=m.records,
                    starts=m.starts, tick_size=m.tick_size, lot_size=m.lot_size, start_min=lo, start_max=hi)
               for m, lo, hi in zip(markets, windows["start_min"], windows["start_max"])]
    options = {k: v for k, v in env_config.items() if k not in ("tick_size", "lot_size")}
    pool = _core.EnvPool.from_markets(entries, num_envs, batch, num_threads, seed, **options)
    return pool, env_config | windows


class TradingVectorEnv(VectorEnv):
    """N envs in one C++ pool over one Market or a list of them (episodes never cross from one to
    another). `batch_size < num_envs` turns on the async send/recv API."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, market: Market | list[Market], *, num_envs: int = 1, batch_size: int | None = None,
                 num_threads: int = 1, seed: int = 0, **config):
        self.markets = list(market) if isinstance(market, (list, tuple)) else [market]
        if not self.markets:
            raise ValueError("market: expected a Market or a non-empty list of them")
        market = self.market = self.markets[0]
        self.num_envs = int(num_envs)
        batch = self.num_envs if batch_size is None else int(batch_size)
        if len(self.markets) == 1:
            self.env_config = pool_config(market, config)
            self._pool = _core.EnvPool(market.book, market.features, self.num_envs, batch, int(num_threads),
                                       int(seed), ts=market.ts, records=market.records, starts=market.starts,
                                       **self.env_config)
        else:
            self._pool, self.env_config = _market_pool(self.markets, dict(spec.from_legacy(config)), self.num_envs,
                                                       batch, int(num_threads), int(seed))
        self.num_agents = self._pool.num_agents
        self.batch_size = batch
        self.single_observation_space, self.single_action_space = spec.spaces(self.env_config, market.features.shape[1])
        self.observation_space = batch_space(self.single_observation_space, batch)
        self.action_space = batch_space(self.single_action_space, batch)
        self._has_trades = np.full(batch, self._pool.has_trades)
        self._blocks: dict[int, tuple] = {}  # first row -> (step fields, info) views of that block
        if type(self).send is TradingVectorEnv.send:  # not overridden by a subclass
            # The pool's own method, bound here: the Python frame of the method below cost 3-5 % of an async
            # recv/send loop on 2 cores (issue 18, session 20).
            self.send = self._pool.send

    # -- gymnasium API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._pool.seed(int(seed))
        self._pool.send_reset()
        obs, _, _, _, info = self.recv()
        return obs, info

    def step(self, actions, env_id=None):
        self.send(actions, env_id)
        return self.recv()

    # -- envpool-style async API --------------------------------------------------------------------
    def async_reset(self) -> None:
        """Reset every env; results come from recv() in batches of batch_size."""
        self._pool.send_reset()

    def send(self, actions, env_id=None) -> None:
        """Actions [batch, ...] for the envs `env_id` (default: every env, in order). The pool checks the
        shape ((n, K, W) or without the K / W axes of size 1), dtype, range and ids in one call."""
        self._pool.send(actions, env_id)

    def recv(self):
        """(obs, reward, terminated, truncated, info); info holds every other output field of
        trader.sim.spec.OUTPUTS ([batch] or, per agent, [batch, K]; [batch] when K == 1), the episode
        statistics and market_has_trades."""
        first = self._pool.recv_first()
        try:
            obs, reward, terminated, truncated, views, episode = self._blocks[first]
        except KeyError:  # the views of a block never move: built once
            obs, reward, terminated, truncated, views, episode = self._blocks[first] = self._block(first)
        info = views.copy()  # the caller's to change; its arrays are the block's views
        info["episode"] = episode.copy()
        return obs, reward, terminated, truncated, info

    def _block(self, first: int) -> tuple:
        step, info = {}, {}
        for field, value in zip(spec.OUTPUTS, self._pool.views(first)):
            if field.per_agent and self.num_agents == 1:
                value = value[:, 0]
            (step if field.name in _STEP_FIELDS else info)[field.name] = value
        info["market_has_trades"] = self._has_trades
        # terminated | truncated, set as each row is stepped (issue 18: a numpy `|` per call cost 16 env steps)
        info["_episode"] = self._pool.done_view(first)
        episode = {"r": info["episode_return"], "l": info["episode_length"]}
        return step["obs"], step["reward"], step["terminated"], step["truncated"], info, episode

    def close_extras(self, **kwargs) -> None:
        self._blocks = {}
        self._pool = None
        self.__dict__.pop("send", None)  # it holds the pool (and its threads) alive

    @property
    def obs_buffer(self) -> np.ndarray:
        """Every block's observations [rows, K, obs_dim]: the fixed memory that recv's obs views point into."""
        return self._pool.obs_buffer()

    @property
    def account_features(self) -> tuple[str, ...]:
        """Names of the observation columns after the market features."""
        quoting = self.env_config["actions"].startswith("quote")
        return spec.ACCOUNT_FEATURES + (spec.QUOTE_FEATURES if quoting else ())


class TradingEnv(gym.Env):
    """One env (the single-env view of the pool), for gymnasium's env checker and simple loops.
    No autoreset: call reset() after a terminated or truncated step."""

    metadata = {"render_modes": []}

    def __init__(self, market: Market | None = None, *, seed: int = 0, **config):
        self._vec = TradingVectorEnv(market if market is not None else load_market(), num_envs=1, seed=seed, **config)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed)
        self._needs_reset = False
        return obs[0].copy(), _first(info)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("step() called before reset() or after the episode ended")
        a = np.asarray(action)
        obs, reward, term, trunc, info = self._vec.step(a.reshape((1,) + a.shape))
        self._needs_reset = bool(term[0] or trunc[0])
        return obs[0].copy(), float(reward[0]), bool(term[0]), bool(trunc[0]), _first(info)


def _first(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, dict):
            out[k] = _first(v)
        else:
            x = v[0]
            out[k] = x.copy() if isinstance(x, np.ndarray) else x.item()
    return out


def make(data=None, *, num_envs: int = 1, batch_size: int | None = None, num_threads: int = 1, seed: int = 0,
         depth: int = 10, interval_ms: float = 100.0, features=None, feature_set: int | None = None,
         **config) -> TradingVectorEnv:
    """A TradingVectorEnv over a dataset folder (default: the bundled sample), a loaded Market, or a
    list of either (several datasets, see load_markets; `feature_set` applies to the folders loaded
    here). Env options: those of trader.sim.spec.options() (unknown ones raise ValueError)."""
    if isinstance(data, (list, tuple)):
        market = [m if isinstance(m, Market) else None for m in data]
        if any(m is None for m in market):
            if features is not None:
                raise ValueError("features: one array fits one dataset; pass Markets to combine several")
            market = [m if isinstance(m, Market) else load_markets(m, depth=depth, interval_ms=interval_ms,
                                                                   feature_set=feature_set)
                      for m in data]
            market = [x for m in market for x in (m if isinstance(m, list) else [m])]
    else:
        market = data if isinstance(data, Market) else load_market(data, depth=depth, interval_ms=interval_ms,
                                                                      features=features, feature_set=feature_set)
    return TradingVectorEnv(market, num_envs=num_envs, batch_size=batch_size, num_threads=num_threads, seed=seed,
                            **config)
