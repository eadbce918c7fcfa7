"""Encoder pieces: labels on a hand-made case, no look-ahead, save/load round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trader.nn.baselines import ofi_features, scores
from trader.nn.data import Series, build
from trader.nn.embed import embed_rows
from trader.nn.inputs import InputStream, RollingNorm, encoder_inputs, mid_trend, order_flow
from trader.nn.labels import (DOWN, NO_LABEL, STATIONARY, UP, direction_labels, smoothed_returns,
                              threshold_for_share)
from trader.nn.models import TLOB, DeepLOB, TCNEncoder, deeplob_columns


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


@pytest.mark.parametrize("model", [TCNEncoder(12, channels=16, embedding_dim=8), DeepLOB(levels=2), TLOB(12, 50)])
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


def _series(inputs="book"):
    from trader.nn.data import load_series

    return load_series(None, inputs=inputs)  # the bundled BTCUSDT sample, 100 ms rows


def test_splits_are_time_ordered_with_gaps_and_train_only_stats():
    s = _series()
    data = build([s], horizons=(10, 20), window=50, norm="train")
    (tr,), (va,), (te,) = data.ranges["train"], data.ranges["val"], data.ranges["test"]
    assert tr[1] + 20 <= va[0] and va[1] + 20 <= te[0]
    np.testing.assert_allclose(data.mean, s.features[tr[0]:tr[1]].mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="too few"):
        build([s], window=len(s.features) + 1)
    nan = Series(s.name, s.features.copy(), s.mid, s.book, s.ts, s.levels)
    nan.features[5, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite value at row 5, column 3"):
        build([nan], window=50)
    with pytest.raises(ValueError, match="norm: expected one of rolling, train, got 'zscore'"):
        build([s], window=50, norm="zscore")


def test_rolling_norm_is_causal_and_streams():
    s = _series("book+of")
    data = build([s], horizons=(10, 20), window=50, norm="rolling")  # no statistics of training rows
    assert data.mean is None and data.norm == {"kind": "rolling", "halflife": 5000.0}
    x = data.normalized(0)
    norm = RollingNorm(5000.0, s.features.shape[1])
    np.testing.assert_allclose(np.stack([norm.push(r) for r in s.features[:400]]), x[:400], atol=1e-4)
    # row t depends on rows <= t only
    changed = s.features.copy()
    changed[300:] *= 3.0
    np.testing.assert_array_equal(RollingNorm(5000.0, changed.shape[1]).apply(changed)[:300], x[:300])
    # a price and size scale change (another instrument) leaves the order-flow columns' z-scores unchanged
    scaled = s.features.copy()
    scaled[:, -20:] *= 1000.0
    np.testing.assert_allclose(RollingNorm(5000.0, scaled.shape[1]).apply(scaled)[:, -20:], x[:, -20:], atol=1e-3)


def test_order_flow_per_level_hand_made():
    book = np.zeros((3, 2, 4), dtype=np.int64)
    book[0] = [(100, 2, 102, 4), (99, 1, 103, 7)]
    book[1] = [(101, 5, 102, 3), (100, 2, 103, 7)]  # bid up one tick; best ask shrinks 4 -> 3
    book[2] = [(101, 5, 101, 6), (101, 5, 102, 3)]  # ask down one tick (new best 6)
    of = order_flow(book, lot_size=0.5)
    L = 2
    assert of[0].tolist() == [0, 0, 0, 0]
    assert of[1, :L].tolist() == [5 * 0.5, 2 * 0.5] and of[1, L:].tolist() == [(4 - 3) * 0.5, 0.0]
    assert of[2, :L].tolist() == [0.0, 5 * 0.5] and of[2, L:].tolist() == [-6 * 0.5, -3 * 0.5]


def test_inputs_stream_equals_the_series():
    from trader.data.dataset import load_dataset
    from trader.sim.env import load_market

    market = load_market(load_dataset(None), depth=10, interval_ms=100.0)
    book, feats = market.book[:200], market.features[:200]
    for inputs, width in (("book+of", 66), ("book+of+ofi", 86), ("of+ofi", 40), ("of+ofi+trend", 44)):
        want = RollingNorm(50.0, width).apply(encoder_inputs(feats, book, market.lot_size, inputs))
        stream = InputStream(inputs, market.lot_size, RollingNorm(50.0, width).push)
        got = np.stack([stream.push(feats[t], book[t]) for t in range(len(book))])
        np.testing.assert_allclose(got, want, atol=1e-4)
    # the OFI sums are the baseline's (before its depth scaling)
    raw = encoder_inputs(feats, book, market.lot_size, "book+of+ofi")
    depth = (book[:, :5, 1].astype(float) + book[:, :5, 3]).mean() * market.lot_size
    np.testing.assert_allclose(raw[:, 66:] / depth, ofi_features(book, 5, (5, 10, 20, 50)) , rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(encoder_inputs(feats, book, market.lot_size, "of+ofi+trend")[:, 40:],
                                  mid_trend(book).astype(np.float32))
    with pytest.raises(ValueError, match=r"inputs: expected one of book, book\+of, book\+of\+ofi, of\+ofi, "
                                         r"of\+ofi\+trend, got 'ofi'"):
        encoder_inputs(feats, book, market.lot_size, "ofi")


def test_mid_trend_hand_made():
    book = np.zeros((4, 1, 4), dtype=np.int64)
    book[:, 0] = [(99, 1, 101, 1), (101, 1, 103, 1), (103, 1, 105, 1), (99, 1, 101, 1)]  # mids 100, 102, 104, 100
    got = mid_trend(book, windows=(1, 2, 3))
    assert got[:, 0].tolist() == [0.0] * 4  # the mean of the last 1 mid is the mid
    np.testing.assert_allclose(got[:, 1], [0.0, 1 / 102 * 1e4, 1 / 104 * 1e4, -2 / 100 * 1e4])
    np.testing.assert_allclose(got[:, 2], [0.0, 1 / 102 * 1e4, 2 / 104 * 1e4, (100 - 102) / 100 * 1e4])


def test_held_out_series_are_test_rows_with_their_own_thresholds():
    s = _series()
    half = len(s.features) // 2
    a = Series("a", s.features[:half], s.mid[:half], s.book[:half], s.ts[:half], s.levels)
    b = Series("b", s.features[half:], s.mid[half:] * 2.0, s.book[half:], s.ts[half:], s.levels)
    data = build([a], horizons=(10, 20), window=50, test_series=[b], alpha_scope="series")
    assert data.ranges["train"][1] == (0, 0) and data.ranges["val"][1] == (0, 0)
    assert data.ranges["test"][1] == (0, len(b.features))
    assert [i for i, t in data.rows("train") if len(t)] == [0]
    (a0, a1), = [data.ranges["train"][0]]
    lab = data.labels[0][a0:a1, 0]
    assert abs((lab == 1).sum() / (lab >= 0).sum() - 1 / 3) < 0.01  # a third stationary on training rows
    for h, k in enumerate((10, 20)):  # the held-out series: from its own rows (its price scale cancels)
        assert data.alphas[1][h] == pytest.approx(threshold_for_share(smoothed_returns(s.mid[half:], k)))


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


@pytest.mark.parametrize("skip", [False, True])
def test_streaming_tcn_equals_the_full_window(skip):
    from trader.nn.stream import TCNStream

    torch.manual_seed(0)
    model = TCNEncoder(66, dropout=0.1, skip=skip).eval()  # eval: dropout off, as in live trading
    assert model.embedding_dim == 32 + 12 * skip  # the skip's logits (4 horizons x 3) follow the embedding
    with torch.no_grad():  # weights away from their init, so that a wrong tap or fold shows
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = np.random.default_rng(1).standard_normal((260, 66)).astype(np.float32)
    stream = TCNStream(model)
    got = np.stack([stream.push(r) for r in x])
    assert got.shape == (260, model.embedding_dim)
    np.testing.assert_allclose(got, embed_rows(model, x, window=100), atol=2e-5)
    window = 100  # >= the receptive field (94 rows): the last row of a window sees all it can see
    with torch.no_grad():
        full = np.stack([model.embed(torch.tensor(x[t - window + 1:t + 1])[None])[0].numpy()
                         for t in range(window - 1, len(x), 40)])
    np.testing.assert_allclose(got[window - 1::40], full, atol=2e-5)
    stream.reset()
    np.testing.assert_allclose(stream.push(x[0]), got[0], atol=1e-6)


def test_selection_on_validation_macro_f1_and_early_stopping(tmp_path):
    from trader.nn.train import TrainConfig, _Stack, _validate, learning_rate, load_encoder, train_model

    data = build([_series("book+of")], horizons=(10, 20), window=50, norm="rolling", alpha_scope="series")
    cfg = TrainConfig(model="tcn", epochs=6, chunks_per_step=2, chunk=32, channels=16, embedding_dim=8,
                      max_steps_per_epoch=2, device="cpu", select="val_f1", patience=2, lr_schedule="cosine",
                      dropout=0.1, learning_rate=3e-3)
    _, meta = train_model(data, cfg, tmp_path, progress=False)
    f1 = [float(np.mean(h["val_macro_f1"])) for h in meta["history"]]
    assert meta["best_epoch"] == int(np.argmax(f1)) + 1 and meta["best_score"] == pytest.approx(max(f1))
    assert len(f1) == 6 or len(f1) - meta["best_epoch"] == 2  # all epochs, or stopped 2 after the best
    best, config, _, _ = load_encoder(tmp_path / "tcn" / "best")
    assert config["norm"] == {"kind": "rolling", "halflife": 5000.0} and config["inputs"] == "book+of"
    stack = _Stack(data, torch.device("cpu"))
    _, again = _validate(best, stack, data, stack.rows(data, "val"), cfg, torch.device("cpu"))
    assert float(np.mean(again)) == pytest.approx(max(f1))
    assert learning_rate(cfg, 0, 100) == 3e-3 and learning_rate(cfg, 50, 100) == pytest.approx(1.5e-3)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="select: expected one of val_loss, val_f1, got 'f1'"):
        train_model(data, TrainConfig(**{**cfg.__dict__, "select": "f1"}), tmp_path / "x", progress=False)


def test_skip_tcn_starts_as_a_linear_model_and_learns_a_causal_residual():
    torch.manual_seed(0)
    model = TCNEncoder(12, channels=16, embedding_dim=8, horizons=2, skip=True)
    x = torch.tensor(np.random.default_rng(0).standard_normal((2, 120, 12)), dtype=torch.float32)
    with torch.no_grad():
        linear = (x @ model.skip.weight[:, :, 0].T + model.skip.bias).view(2, 120, 2, 3)
        torch.testing.assert_close(model(x), linear)  # deep head starts at 0: the logistic regression
        model.heads.weight.normal_()
        out = model(x)
        assert not torch.allclose(out, linear)
        changed = x.clone()
        changed[:, 80:] += 5.0
        torch.testing.assert_close(model(changed)[:, :80], out[:, :80])  # still causal


def test_skip_is_the_logistic_regression_fitted_first_then_frozen(tmp_path):
    from trader.nn.baselines import logistic_weights
    from trader.nn.train import TrainConfig, _Stack, train_model

    data = build([_series("of+ofi+trend")], horizons=(10, 20), window=50, norm="rolling", alpha_scope="series")
    cfg = TrainConfig(model="tcn", epochs=2, chunks_per_step=2, chunk=32, channels=16, embedding_dim=8,
                      max_steps_per_epoch=3, device="cpu", select="val_f1", skip=True, learning_rate=3e-3)
    model, meta = train_model(data, cfg, tmp_path, progress=False)
    assert [h["epoch"] for h in meta["history"]] == [0, 1, 2]  # epoch 0: the regression alone, a candidate
    stack = _Stack(data, torch.device("cpu"))
    rows = torch.as_tensor(stack.rows(data, "train"))
    x, y = stack.x[rows].double().numpy(), stack.y[rows].numpy()
    for h in range(2):  # whichever epoch was kept, the skip is the regression: training left it alone
        w, b = logistic_weights(x, y[:, h])
        np.testing.assert_allclose(model.skip.weight[3 * h:3 * h + 3, :, 0].detach().numpy(), w.T, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.skip.bias[3 * h:3 * h + 3].detach().numpy(), b, rtol=1e-5, atol=1e-6)


def test_balance_weighs_every_training_dataset_the_same():
    from trader.nn.train import TrainConfig, _Stack, _validate, epoch_order

    s = _series("of+ofi")
    cut = len(s.features) // 5
    small, big = (Series(n, s.features[a:b], s.mid[a:b], s.book[a:b], s.ts[a:b], s.levels, s.inputs)
                  for n, (a, b) in (("small", (0, cut)), ("big", (cut, len(s.features)))))
    data = build([small, big], horizons=(10, 20), window=50, norm="rolling", alpha_scope="series")
    stack = _Stack(data, torch.device("cpu"))
    rows = stack.rows(data, "train")
    n_small = sum(len(t) for i, t in data.rows("train") if i == 0)
    cfg = TrainConfig(model="tcn", channels=8, embedding_dim=4, device="cpu", balance=True)
    drawn = rows[epoch_order(rows, stack.offsets, cfg, 0)]
    assert abs(np.mean(drawn < stack.offsets[1]) - 0.5) < 0.05  # half from each, though small has ~1/5 of rows
    assert n_small / len(rows) < 0.3
    plain = epoch_order(rows, stack.offsets, TrainConfig(model="tcn"), 0)
    assert sorted(plain.tolist()) == list(range(len(rows)))  # without balance: a permutation
    model = TCNEncoder(s.features.shape[1], channels=8, embedding_dim=4, horizons=2).eval()
    val = stack.rows(data, "val")
    _, f1 = _validate(model, stack, data, val, cfg, torch.device("cpu"))
    per = [_validate(model, stack, data, val[(val >= stack.offsets[i]) & (val < stack.offsets[i + 1])],
                     TrainConfig(model="tcn"), torch.device("cpu"))[1] for i in range(2)]
    np.testing.assert_allclose(f1, np.mean(per, 0))


def test_blend_weight_is_chosen_on_the_rows_given():
    from trader.nn.baselines import blend_weight, fit_logistic_regression, logistic_regression

    y = np.array([0, 1, 2, 2, 1, 0])
    right = np.eye(3)[y]  # one-hot on the true class
    wrong = np.eye(3)[(y + 1) % 3]
    # the first weight of the grid 0, 0.1, ..., 1 with the best macro-F1: from 0.6 on `right` dominates
    assert blend_weight(right, wrong, y) == 0.6 and blend_weight(wrong, right, y) == 0.0
    half = np.where(np.arange(6)[:, None] < 3, right, wrong)  # right on the first 3 rows only
    assert blend_weight(0.9 * half + 0.1 * wrong, 0.7 * right + 0.3 * wrong, y) == 0.0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 2))
    labels = np.where(x[:, 0] > 0.5, 2, np.where(x[:, 0] < -0.5, 0, 1))
    proba = fit_logistic_regression(x, labels)(x)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(proba.argmax(1), logistic_regression(x, labels, x))
    assert scores(labels, proba.argmax(1))["macro_f1"] > 0.9
