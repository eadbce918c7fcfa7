"""Encoder pieces: labels on a hand-made case, no look-ahead, save/load round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trader.nn.baselines import ofi_features, scores
from trader.nn.data import Series, build
from trader.nn.embed import embed_rows
from trader.nn.labels import DOWN, NO_LABEL, STATIONARY, UP, direction_labels, smoothed_returns
from trader.nn.models import DeepLOB, TCNEncoder, deeplob_columns


def test_smoothed_labels_hand_made():
    mid = np.array([100, 100, 100, 101, 103, 103, 99, 99, 99, 99], dtype=float)
    k = 2
    r = smoothed_returns(mid, k)
    # t=1: m- = (100+100)/2, m+ = (100+101)/2 -> +0.5%
    assert r[1] == pytest.approx(0.005)
    # t=4: m- = (101+103)/2 = 102, m+ = (103+99)/2 = 101 -> -1/102
    assert r[4] == pytest.approx(-1 / 102)
    assert np.isnan(r[0]) and np.isnan(r[8]) and np.isnan(r[9])  # incomplete windows
    labels = direction_labels(r, alpha=0.002)
    assert labels[1] == UP and labels[4] == DOWN and labels[0] == NO_LABEL
    assert r[7] == pytest.approx(0.0) and labels[7] == STATIONARY


def test_ofi_best_level_hand_made():
    # row 1: bid price up (new bid qty 5 counts +5); ask unchanged with qty 4 -> 3 (ask shrinks: +1)
    book = np.zeros((2, 1, 4), dtype=np.int64)
    book[0, 0] = (100, 2, 102, 4)
    book[1, 0] = (101, 5, 102, 3)
    ofi = ofi_features(book, levels=1, lags=(1,))
    depth = (2 + 4 + 5 + 3) / 2
    assert ofi[1, 0] == pytest.approx((5 + 1) / depth)
    assert ofi[0, 0] == 0


def test_scores_macro_f1():
    y = np.array([0, 0, 1, 2])
    p = np.array([0, 1, 1, 2])
    s = scores(y, p)
    assert s["accuracy"] == 0.75
    assert s["macro_f1"] == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))


@pytest.mark.parametrize("model", [TCNEncoder(12, channels=16, embedding_dim=8), DeepLOB(levels=2)])
def test_no_look_ahead(model):
    torch.manual_seed(0)
    feats = np.random.default_rng(0).standard_normal((300, 12)).astype(np.float32)
    base = embed_rows(model, feats, window=50)
    changed = feats.copy()
    changed[200:] += 5.0  # rewrite everything after row 199
    after = embed_rows(model, changed, window=50)
    np.testing.assert_allclose(base[:200], after[:200], rtol=1e-5, atol=1e-6)
    assert not np.allclose(base[200:], after[200:])


def test_embed_bad_input():
    model = TCNEncoder(4, channels=8, embedding_dim=4)
    with pytest.raises(ValueError, match="window: 50 rows is longer than the data"):
        embed_rows(model, np.zeros((10, 4), np.float32), window=50)
    bad = np.zeros((100, 4), np.float32)
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite value at row 7, column 2"):
        embed_rows(model, bad, window=10)


def _series():
    from trader.nn.data import load_series

    return load_series(None)  # the bundled BTCUSDT sample, 100 ms rows


def test_splits_are_time_ordered_with_gaps_and_train_only_stats():
    s = _series()
    data = build([s], horizons=(10, 20), window=50)
    (tr,), (va,), (te,) = data.ranges["train"], data.ranges["val"], data.ranges["test"]
    assert tr[1] + 20 <= va[0] and va[1] + 20 <= te[0]
    np.testing.assert_allclose(data.mean, s.features[tr[0]:tr[1]].mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="too few"):
        build([s], window=len(s.features) + 1)
    nan = Series(s.name, s.features.copy(), s.mid, s.book, s.ts, s.levels)
    nan.features[5, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite value at row 5, column 3"):
        build([nan], window=50)


def test_train_save_load_round_trip_and_resume(tmp_path):
    from trader.nn.train import TrainConfig, load_encoder, train_model

    data = build([_series()], horizons=(10, 20), window=50)
    cfg = TrainConfig(model="tcn", epochs=1, chunks_per_step=4, chunk=32, channels=16, embedding_dim=8,
                      max_steps_per_epoch=3, device="cpu")
    model, meta = train_model(data, cfg, tmp_path, progress=False)
    loaded, config, mean, std = load_encoder(tmp_path / "tcn", "cpu")
    np.testing.assert_array_equal(mean, data.mean)
    x = torch.tensor(data.normalized(0)[:120])[None]
    last, _, _, _ = load_encoder(tmp_path / "tcn")
    with torch.no_grad():
        np.testing.assert_allclose(last.embed_sequence(x).numpy(), loaded.embed_sequence(x).numpy())
    # resume: one more epoch continues from the saved state (epoch counter advances)
    cfg2 = TrainConfig(**{**cfg.__dict__, "epochs": 2})
    _, meta2 = train_model(data, cfg2, tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in meta2["history"]] == [1, 2]


def test_deeplob_column_order():
    assert deeplob_columns(2) == [2, 6, 0, 4, 3, 7, 1, 5]


def test_embeddings_become_the_env_observation(tmp_path):
    import json

    from trader.nn.embed import embed_dataset
    from trader.nn.train import TrainConfig, train_model
    from trader.sim import load_market, make

    data = build([_series()], horizons=(10, 20), window=50)
    cfg = TrainConfig(model="tcn", epochs=1, chunks_per_step=2, chunk=32, channels=16, embedding_dim=8,
                      max_steps_per_epoch=2, device="cpu")
    train_model(data, cfg, tmp_path, progress=False)
    (tmp_path / "data.json").write_text(json.dumps({"interval_ms": 100.0, "depth": 10}))
    out = embed_dataset(tmp_path / "tcn", None, tmp_path / "emb.npy")
    emb = np.load(out)
    market = load_market()
    assert emb.shape == (len(market.book), 8)
    env = make(features=out, num_envs=2, horizon=50)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 8 + 3)
    np.testing.assert_array_equal(obs[:, :8], emb[info["t"]])
