"""The rewards of the pure-Python reference env (trader.sim.reference, step 5), written out as
cpp/env/trading_env.cpp's TradingEnv::step computes them: the markout rewards' later mid, and one agent's
reward of a step."""

from __future__ import annotations

from typing import NamedTuple


class Later(NamedTuple):
    """What the markout rewards read at a step, in quote per lot."""
    mark: float  # mid of the first row markout_ns after the cursor's (the episode's last if sooner), detrended
    move: float  # the undetrended later mid's change since the last step's (markout_inventory_weight)
    hurdle: float  # charged per lot filled (markout_hurdle_bps, markout_hurdle_spreads)
    raw: float  # the undetrended later mid: the next step's `move` starts from it


def later_marks(env, mark: float, previous: float) -> Later:
    """The markout rewards' later mids at `env`'s cursor (just advanced); `previous`: the last step's Later.raw."""
    cfg = env.cfg
    last = min(env.cursor - env.steps + cfg["horizon"], env.rows - 1)
    due = env.ts[env.cursor] + cfg["markout_ns"]
    row = next((r for r in range(env.cursor, last + 1) if env.ts[r] >= due), last)
    raw = env.mid[row] * env.ntl
    mid_later = env.mid[row]
    if cfg["markout_detrend"]:
        mid_later -= env.drift * float(env.ts[row] - env.ts[env.cursor])
    top = env.book[env.cursor, 0].tolist()
    hurdle = cfg["markout_hurdle_bps"] * 1e-4 * mark + cfg["markout_hurdle_spreads"] * float(top[2] - top[0]) * env.ntl
    return Later(mid_later * env.ntl, raw - previous, hurdle, raw)  # a first step's move meets a flat position


def agent_reward(cfg: dict, a, equity: float, mark: float, mark_before: float, at: Later | None,
                 max_lots: int) -> float:
    """Agent `a`'s reward of the step (before reward_scale): the change of its equity, or with `at` (the markout
    rewards) its step's fills against the later mid, loss-weighted, less the hurdle, plus markout_inventory_weight of
    the lots it held before them marked over the later mid's move; then the inventory penalty or dampening."""
    r = equity - a.equity
    q = float(a.position)
    if at is not None:
        r = (a.cash - a.cash_at_step) + float(a.filled) * at.mark
        r = r * (cfg["markout_loss_weight"] if r < 0 else 1.0) - at.hurdle * float(abs(a.filled))
        r += cfg["markout_inventory_weight"] * float(a.position_at_step) * at.move
    if cfg["reward"] in ("inventory_penalty", "markout_penalty"):
        x = q / float(max_lots)
        r -= cfg["inventory_penalty_bps"] * 1e-4 * float(max_lots) * mark * x * x
    elif cfg["reward"] == "dampened":
        r -= max(0.0, cfg["dampen_eta"] * q * (mark - mark_before))
    return r
