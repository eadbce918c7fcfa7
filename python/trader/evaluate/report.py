"""The evaluation report folder: evaluation.md, evaluation.json and plots (per fold: equity, inventory and
drawdown of every seed, the seeds' committee and every baseline; overall: each strategy's summed PnL with the
agent's interval; the agent's action distribution per fold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader.backtest.report import currencies, risk_text
from trader.evaluate.stats import Interval
from trader.evaluate.summary import KEY, METRICS, MIN_BLOCKS


def _cell(value, fmt: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return Interval(**value).text(fmt)
    return fmt.format(value)


def _block_cell(ci: dict, n: int) -> str:
    """A mean over n test blocks with its interval (trader.evaluate.summary.over_blocks)."""
    if ci["low"] is None:
        return f"{ci['mean']:+.2f} (no interval from {n} blocks; {MIN_BLOCKS} or more give one)"
    return Interval(**ci).text()


def _needed(blocks: dict) -> str:
    """What the agent minus the best baseline needs to clear zero over blocks (trader.evaluate.summary.blocks_needed);
    nothing where that interval is above zero already or fewer than MIN_BLOCKS blocks give none."""
    ci, needed = blocks["agent_minus_best_baseline"], blocks["blocks_needed"]
    if ci["low"] is None or ci["low"] > 0:
        return ""
    if needed is None:
        return "; its mean is not above zero, so no number of such blocks puts that interval above zero"
    return (f"; at this mean and spread that interval needs about {needed} such blocks to lie above zero (normal "
            "approximation)")


def _blocks_line(blocks: dict, best: str) -> str:
    """The overall's line on the test blocks (trader.evaluate.summary.across_blocks)."""
    n = blocks["n"]
    return (f"- across the {n} test blocks (every seed trades the same rows, so the seeds' interval leaves "
            f"out the chance of the periods themselves): the agent's PnL per block, mean over seeds, "
            f"{_block_cell(blocks['agent'], n)} (mean [95 % CI] over blocks); minus the best baseline ({best}) "
            f"{_block_cell(blocks['agent_minus_best_baseline'], n)}{_needed(blocks)}; blocks in which it beat every "
            f"baseline: {blocks['beating_every_baseline']} of {n}")


def _committee_line(committee: dict | None, best: str) -> list[str]:
    """The overall's line on the committee of the seeds (trader.evaluate.summary.committee_summary)."""
    if committee is None:
        return []
    if "untested" in committee:
        return ["- committee of the seeds: not tested (" + "; ".join(f"fold {i}: {note}" for i, note in
                                                                    sorted(committee["untested"].items())) + ")"]
    b, n = committee["blocks"], committee["blocks"]["n"]
    return [f"- committee of seeds {committee['seeds']} (at every step what a strict majority of their actions backs, "
            f"trader.rl.committee): PnL summed over folds {committee['total']:+.2f}; per test block "
            f"{_block_cell(b['agent'], n)} (mean [95 % CI] over blocks); minus the best baseline ({best}) "
            f"{_block_cell(b['agent_minus_best_baseline'], n)}{_needed(b)}; minus the seeds' mean, block for block, "
            f"{_block_cell(committee['minus_seeds_mean'], n)}; blocks in which it beat every baseline: "
            f"{b['beating_every_baseline']} of {n}"]


def _gate_line(gate: dict | None, best: str) -> list[str]:
    """The overall's line on the seeds under the paper-first gate (trader.evaluate.summary.gate_summary)."""
    if gate is None:
        return []
    b, n = gate["blocks"], gate["blocks"]["n"]
    return [f"- paper first (each seed trades a block only while its PnL over the earlier test blocks is above zero; "
            f"flat in the first, trader.evaluate.summary.gate_open): trading in {gate['open']} of "
            f"{gate['tests']} fold x seed tests; PnL per test block {_block_cell(b['agent'], n)} (mean [95 % CI] over "
            f"blocks); minus the best baseline ({best}) {_block_cell(b['agent_minus_best_baseline'], n)}; minus the "
            f"seeds ungated, block for block, {_block_cell(gate['minus_seeds_mean'], n)}"]


def _fold_table(fold: dict, base: str, quote: str) -> list[str]:
    heads = [h.replace("(quote)", f"({quote})").replace("(base)", f"({base})") for _, h, _ in METRICS]
    lines = ["| strategy | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(METRICS)]
    for name, metrics in fold["strategies"].items():
        label = "**agent** (mean [95 % CI] over seeds)" if name == "agent" else name
        lines.append(f"| {label} | " + " | ".join(_cell(metrics[k], f) for k, _, f in METRICS) + " |")
    return lines


def evaluation_context(plan, markets: dict, wall_s: float, cuda: bool) -> dict:
    """What the report says about an evaluation: the learner, data, seeds, env options and folds of `plan`
    (trader.evaluate.run.Plan; markets: its datasets' Markets by path), its wall time and device."""
    import torch

    from trader.backtest.engine import env_config_from_run, period_utc
    from trader.backtest.suite import step_seconds
    from trader.rl.policy import learner
    from trader.run.config import args_to_dict
    from trader.run.lifecycle import resolve_args
    from trader.sim import spec

    run_args = args_to_dict(resolve_args(learner(plan.algo).Args, None, plan.args))

    def fold_info(fold) -> dict:
        market = markets[fold.test_data]
        return {"describe": fold.describe(), "symbol": market.symbol, "step_s": step_seconds(market),
                "period_utc": period_utc(market, fold.test_start, fold.test_end)}

    return {
        "algo": plan.algo, "data": ", ".join(p or "<bundled sample>" for p in markets), "seeds": plan.seeds,
        "train_also": list(plan.args.get("train_also") or []),
        "total_timesteps": run_args["total_timesteps"],
        "env": {**spec.defaults(), **env_config_from_run(run_args)}, "args": dict(plan.args),
        "folds": [fold_info(f) for f in plan.folds], "wall_s": wall_s,
        "device": torch.cuda.get_device_name(0) if cuda and torch.cuda.is_available() else "cpu",
    }


def _choice_lines(choice: dict | None) -> list[str]:
    """What --validation-s did (trader.evaluate.choose), per fold: the seeds chosen and how well the
    validation PnL of every seed foretold its test PnL."""
    if choice is None:
        return []
    k = choice["choose_among"]
    out = [f"Seeds chosen on validation: every agent trained without the last {choice['validation_s']:g} s of its "
           f"training rows and was backtested on them; of every {k} of the seeds {choice['seeds']}, the one with the "
           f"best PnL there is tested, and each such group is one seed below (seed g: the g-th group, in seed order).", ""]
    for f in choice["folds"]:
        corr = "n/a" if f["correlation"] is None else f"{f['correlation']:+.2f}"
        out.append(f"- fold {f['fold']}: chosen seeds {list(f['chosen'].values())}; correlation over seeds of "
                   f"validation and test PnL {corr}")
    every = choice["every_seed"]
    out.append(f"- without the choice, every one of the {len(choice['seeds'])} seeds: agent "
               f"{_cell(every['agent'], '{:+.2f}')}, minus the best baseline ({every['best_baseline']}) "
               f"{_cell(every['agent_minus_best_baseline'], '{:+.2f}')} (bps of max position notional, summed over "
               "folds)")
    return out + [""]


def write_evaluation(out_dir: Path, results: dict, summary: dict, context: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [{k: v for k, v in j.items() if k != "agents"} | {"metrics": [a["metrics"] for a in j["agents"]]}
            for j in results["agents"]]
    baselines = {i: {c["name"]: c["metrics"] for c in curves} for i, curves in results["baselines"].items()}
    committees = {i: {k: v for k, v in c.items() if k != "agents"} | ({"metrics": [a["metrics"] for a in c["agents"]]}
                                                                       if "agents" in c else {})
                  for i, c in results.get("committees", {}).items()}
    (out_dir / "evaluation.json").write_text(json.dumps(
        {"context": context, "summary": summary, "jobs": jobs, "baselines": baselines, "committees": committees},
        indent=2, default=float))
    ov = summary["overall"]
    lines = [
        f"# Walk-forward evaluation: {context['algo']} on {context['data']}",
        "",
        f"{len(context['folds'])} folds x {len(context['seeds'])} seeds (seeds {context['seeds']}); actions "
        f"{context['env']['actions']}; maker {context['env']['maker_fee_bps']} bps / taker "
        f"{context['env']['taker_fee_bps']} bps; order latency {context['env']['order_latency_ns'] / 1e6:g} ms, "
        f"cancel latency {context['env']['cancel_latency_ns'] / 1e6:g} ms{risk_text(context['env'])}; "
        f"{context['total_timesteps']} env steps "
        f"per agent; wall time {context['wall_s']:.0f} s on {context['device']}.",
        "",
        *_choice_lines(context.get("choice")),
        "Every fold trains on its training rows only and tests on the next block, which no training episode "
        "reaches" + (f"; every fold also trains on all rows of {', '.join(context['train_also'])} (--train-also)"
                     if context.get("train_also") else "") +
        ". Intervals: percentile bootstrap of the mean over seeds, 95 %, 10,000 resamples. Sharpe over the period = "
        "mean / std of the PnL per step x sqrt(steps) (not annualized). Max position notional = the position limit "
        "at the test period's mean mid.",
        "",
        "## Overall",
        "",
        f"Metric: {ov['metric']} (each seed's walk-forward track record).",
        "",
        "| strategy | PnL (bps of max position notional, summed over folds) |",
        "|---|---:|",
        f"| **agent** (mean [95 % CI] over seeds) | {_cell(ov['agent'], '{:+.2f}')} |",
        *[f"| {name} | {value:+.2f} |" for name, value in ov["baselines"].items()],
        "",
        f"- agent minus the best baseline ({ov['best_baseline']}): {_cell(ov['agent_minus_best_baseline'], '{:+.2f}')}",
        "- where the agent's PnL came from (mean [95 % CI] over seeds): inventory (position x mid move) "
        f"{_cell(ov['agent_split']['inventory'], '{:+.2f}')}, fills against the next mid net of fees "
        f"{_cell(ov['agent_split']['fills'], '{:+.2f}')}",
        f"- seeds beating flat: {ov['seeds_beating_flat']:.0%}; seeds beating every baseline: "
        f"{ov['seeds_beating_every_baseline']:.0%}",
        _blocks_line(ov["blocks"], ov["best_baseline"]),
        *_committee_line(ov.get("committee"), ov["best_baseline"]),
        *_gate_line(ov.get("track_record_gate"), ov["best_baseline"]),
        f"- fold x seed tests in which the agent traded: {ov['tests_that_traded']} of {ov['tests']}; time at the "
        f"position limit: {ov['time_at_limit_pct']:.1f} % of the test steps (mean over tests)",
        "- agent per seed: " + ", ".join(f"seed {s}: {v:+.2f}" for s, v in ov["agent_per_seed"].items()),
    ]
    if ov["baselines_not_in_every_fold"]:
        lines.append("- not in the overall comparison (missing in some fold, see the fold notes): "
                     + ", ".join(ov["baselines_not_in_every_fold"]))
    for fold, info in zip(summary["folds"], context["folds"]):
        base, quote = currencies(info.get("symbol", ""))
        lines += ["", f"## Fold {fold['fold']}", "", f"{info['describe']}; test period {info['period_utc'][0]} to "
                  f"{info['period_utc'][1]} UTC ({info['symbol']}, quote = {quote}, base = {base}).", "",
                  *_fold_table(fold, base, quote), "",
                  f"- agent minus the best baseline ({fold['best_baseline']}), bps of max position notional: "
                  f"{_cell(fold['agent_minus_best_baseline'], '{:+.2f}')}",
                  f"- seeds beating flat: {fold['seeds_beating_flat']:.0%}"]
        lines += [f"- {n}" for n in results["notes"].get(fold["fold"], [])]
        note = results.get("committees", {}).get(fold["fold"], {}).get("note")
        if note:
            lines.append(f"- committee: not tested, {note}")
    lines += ["", "Plots: " + ", ".join(f"`fold_{f['fold']}.png`" for f in summary["folds"]) +
              ", `overall.png`, `actions.png`."]
    (out_dir / "evaluation.md").write_text("\n".join(lines) + "\n")
    _plots(out_dir, results, summary, context)


def _plots(out_dir: Path, results: dict, summary: dict, context: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for fold in summary["folds"]:
        i = fold["fold"]
        step_s = context["folds"][i - 1]["step_s"]
        fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
        series = [(f"agent seed {j['seed']}", a, 0.8) for j in results["agents"] if j["fold"] == i for a in j["agents"]]
        series += [(c["name"], c, 1.4) for c in results["baselines"][i]]
        series += [("committee", a, 2.0) for a in results.get("committees", {}).get(i, {}).get("agents", [])]
        for label, c, lw in series:
            eq = np.asarray(c["equity"])
            t = np.arange(len(eq)) * step_s
            axes[0].plot(t, eq, lw=lw, label=label)
            axes[1].plot(t, np.asarray(c["position_base"]), lw=lw)
            axes[2].plot(t, eq - np.maximum.accumulate(eq), lw=lw)
        axes[0].set_ylabel("PnL (quote)")
        axes[1].set_ylabel("inventory (base)")
        axes[2].set_ylabel("drawdown (quote)")
        axes[2].set_xlabel("seconds from the start of the test block")
        axes[0].legend(fontsize=7, ncol=3)
        axes[0].set_title(context["folds"][i - 1]["describe"], fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / f"fold_{i}.png", dpi=100)
        plt.close(fig)

    ov = summary["overall"]
    names = ["agent", *ov["baselines"]]
    values = [ov["agent"]["mean"], *ov["baselines"].values()]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, values, color=["C0"] + ["C7"] * len(ov["baselines"]))
    if ov["agent"]["low"] is not None:
        ax.errorbar([0], [ov["agent"]["mean"]], yerr=[[ov["agent"]["mean"] - ov["agent"]["low"]],
                                                      [ov["agent"]["high"] - ov["agent"]["mean"]]], color="k", capsize=6)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel(f"{KEY}, summed over folds")
    ax.set_title("walk-forward total (agent: mean and 95 % CI over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "overall.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(summary["folds"]), figsize=(4 * len(summary["folds"]), 3), squeeze=False)
    for ax, fold in zip(axes[0], summary["folds"]):
        acts = [np.asarray(a["actions"]) for j in results["agents"] if j["fold"] == fold["fold"] for a in j["agents"]]
        flat = np.concatenate([x.reshape(len(x), -1)[:, 0] for x in acts]) if acts else np.zeros(0)
        if flat.dtype.kind in "iu":
            values, counts = np.unique(flat, return_counts=True)
            ax.bar(values.astype(str), counts / counts.sum())
        else:
            ax.hist(flat, bins=21, range=(-1, 1), density=True)
        ax.set_title(f"fold {fold['fold']}: agent actions", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "actions.png", dpi=100)
    plt.close(fig)
