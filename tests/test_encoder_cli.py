"""`trader train-encoder`: seeds, the epoch kept, datasets never trained on, leave-one-dataset-out."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from trader.cli import main
from trader.data.dataset import sample_path


def test_seeds_held_out_data_and_the_epoch_kept(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train-encoder", "--out", str(out), "--model", "tcn", "--epochs", "2",
                                  "--max-steps-per-epoch", "2", "--seeds", "0,1", "--window", "50", "--horizons",
                                  "10,20", "--device", "cpu", "--test-data", str(sample_path())])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["scores"]) == {"test split", "held out sample"}
    tcn = report["scores"]["held out sample"]["tcn"]
    assert len(tcn) == 2 and all(h["seeds"] == 2 for h in tcn)
    per_seed = [s[0]["macro_f1"] for s in report["scores_per_seed"]["held out sample"]["tcn"]]
    assert tcn[0]["macro_f1"] == sum(per_seed) / 2
    cost = report["training_cost"]["tcn"]
    assert len(cost["chosen_epochs"]) == 2 and all(e in (1, 2) for e in cost["chosen_epochs"])
    for run in cost["runs"]:  # seed<k>/tcn/best, each loadable
        assert (Path(run) / "config.json").is_file() and Path(run).parent.parent.name.startswith("seed")
    assert "epoch kept per run" in (out / "report.md").read_text()


def test_lodo_needs_two_datasets():
    r = CliRunner().invoke(main, ["train-encoder", "--lodo", "--data", str(sample_path())])
    assert r.exit_code == 2 and "--lodo: needs at least 2 --data datasets, got 1" in r.output
