"""One walk-forward evaluation from plan to report: check the datasets, cut the folds, train and test
every (fold, seed) agent (trader.evaluate.run), run the baselines once per fold, write the report.

    ev = Evaluation.plan(["data/a"], split="blocks", folds=3, gap=0, seeds=5, base_seed=1, algo="ppo",
                         options={"total_timesteps": 100_000}, config=None, device="cpu", out_dir=Path("ev"))
    ev.run(jobs=4)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trader.backtest.engine import BaselineOptions, env_config_from_run, sampling_interval_s
from trader.evaluate.folds import Fold, block_folds, check_depth, dataset_folds, train_data
from trader.evaluate.run import Job, book_market, fold_baselines, resolved_args, run_jobs


class EvaluationError(ValueError):
    """Bad input for an evaluation: the message names the dataset, fold or option."""


@dataclass
class Evaluation:
    folds: list[Fold]
    jobs: list[Job]
    env_config: dict  # the agents' env options (the baselines run in the same env)
    context: dict  # for the report: data, options, fees, latency, split
    out_dir: Path

    @classmethod
    def plan(cls, datasets: list, *, split: str, folds: int, gap: int, seeds: int, base_seed: int, algo: str,
             options: dict, config: str | None, device: str, out_dir: Path) -> Evaluation:
        """Check the datasets and options and lay out the folds and jobs; nothing is trained yet. An
        EvaluationError naming the dataset, fold or option on bad input."""
        from trader.run.config import args_to_dict

        try:
            rows, starts = [], []
            for d in datasets:
                market = book_market(d)
                if len(market.book) < 2:
                    raise ValueError(f"dataset {d}: {len(market.book)} book rows with both sides once sampled; "
                                     "nothing to train or test on")
                check_depth(d, market.book)
                rows.append(len(market.book))
                starts.append(int(market.ts[0]))
            probe = Job(Fold(0, (datasets[0],), None, datasets[0], 0, rows[0]), base_seed, algo, options, config,
                        str(out_dir / "runs"), device, rows[0])
            args = resolved_args(probe)
            if args.env_id != "trader" or int(args.num_agents) != 1:
                raise ValueError(f"evaluate trains one agent per seed on the trader env (got env {args.env_id!r}, "
                                 f"--num-agents {args.num_agents})")
            reach = int(args.horizon) + int(args.latency_steps)
            if split == "blocks":
                cut = [f for d, n in zip(datasets, rows) for f in block_folds(d, n, folds, horizon=reach, gap=gap)]
            else:
                cut = dataset_folds(datasets, rows, starts, horizon=reach)
            for f in cut:
                train_data(f)  # refuse folds over several datasets before anything trains
            env_config = env_config_from_run(args_to_dict(args))
        except (ValueError, FileNotFoundError) as e:
            raise EvaluationError(str(e)) from None
        rows_of = dict(zip(map(str, datasets), rows))
        jobs = [Job(f, base_seed + s, algo, options, config, str(out_dir / "runs" / f.name), device,
                    rows_of[str(f.train_data[0])]) for f in cut for s in range(seeds)]
        from trader.sim import spec

        full = {**spec.defaults(), **env_config}
        context = {"algo": algo, "data": ["<bundled sample>" if d is None else str(d) for d in datasets],
                   "split": split, "folds": len(cut), "seeds": seeds, "seed": base_seed, "gap": gap,
                   "device": device, "options": {k: v for k, v in options.items()}, "config": config,
                   "actions": full["actions"], "taker_fee_bps": full["taker_fee_bps"],
                   "maker_fee_bps": full["maker_fee_bps"], "order_latency_ms": full["order_latency_ns"] / 1e6,
                   "trade_size": full["trade_size"], "max_position": full["max_position"],
                   "train": f"--algo {algo}, total timesteps {args.total_timesteps}, {args.num_envs} envs, horizon "
                            f"{args.horizon}, learning rate {args.learning_rate:g}, encoder {args.encoder or 'none'}"}
        return cls(cut, jobs, env_config, context, out_dir)

    def run(self, *, jobs: int = 1, baselines: tuple = (), progress: bool = True) -> dict:
        """Train and test every job (`jobs` at once), the baselines per fold; write the report; its JSON."""
        from tqdm import tqdm

        tested = self.baselines(baselines)
        with tqdm(total=len(self.jobs), desc="folds x seeds", unit="agent", disable=not progress) as bar:
            results = run_jobs(self.jobs, jobs, bar.update)
        return self.report(results, tested, jobs)

    def baselines(self, options: tuple = ()) -> tuple[list, list[dict]]:
        """Per fold: the baselines' results on its test rows, and its test period for the report."""
        tested = [tested_baselines(f, self.env_config, options) for f in self.folds]
        return [t[0] for t in tested], [t[1] for t in tested]

    def report(self, results: list, tested: tuple[list, list[dict]], jobs: int) -> dict:
        """Write the report of the jobs' results (in the order of self.jobs) next to the baselines."""
        from trader.evaluate.report import write_evaluation

        per_fold = [[r for j, r in zip(self.jobs, results) if j.fold == f] for f in self.folds]
        base, contexts = tested
        return write_evaluation(self.out_dir, self.folds, per_fold, base, contexts, dict(self.context, jobs=jobs))


def tested_baselines(fold: Fold, env_config: dict, options: tuple = ()) -> tuple[list, dict]:
    """The baselines' results on the fold's test rows and its test period for the report (a job of its
    own: a benchmark runs the folds' baselines in parallel)."""
    from trader.backtest.report import period_utc

    try:
        results, notes = fold_baselines(fold, env_config, BaselineOptions(*options))
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    market = book_market(fold.test_data)
    return results, {"symbol": market.symbol, "period_utc": period_utc(market, fold.test_start, fold.test_end),
                     "interval_s": sampling_interval_s(market), "baseline_notes": notes}
