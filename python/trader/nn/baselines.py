"""Baselines for mid-price direction: the majority class, and multinomial logistic regression on
order-flow imbalance (OFI) features; and the blend weight of a deep model with that regression.

OFI of level m between rows n-1 and n (Cont, Kukanov, Stoikov 2014 for the best level; Xu, Gould,
Howison 2019 for deeper levels) is bOF_m + aOF_m of trader.nn.inputs.order_flow, summed over the last
{1, 5, 10, 20, 50} rows for levels 1..5 and scaled by the mean top-5 depth.
"""

from __future__ import annotations

import numpy as np
import torch

from trader.nn.inputs import order_flow

LAGS = (1, 5, 10, 20, 50)


def ofi_features(book: np.ndarray, levels: int = 5, lags=LAGS) -> np.ndarray:
    """book: int64 [T, L, 4] -> float32 [T, levels * len(lags)]; row t uses rows <= t only."""
    T, L = book.shape[0], book.shape[1]
    m = min(levels, L)
    flow = order_flow(book)
    e = flow[:, :m] + flow[:, L:L + m]
    depth = max(float((book[:, :m, 1].astype(np.float64) + book[:, :m, 3]).mean()), 1e-12)
    c = np.concatenate([np.zeros((1, m)), np.cumsum(e, axis=0)])
    cols = []
    for lag in lags:
        t = np.arange(T)
        cols.append((c[t + 1] - c[np.maximum(t + 1 - lag, 0)]) / depth)
    return np.concatenate(cols, axis=1).astype(np.float32)


def majority_predict(train_labels: np.ndarray, n: int) -> np.ndarray:
    return np.full(n, int(np.bincount(train_labels, minlength=3).argmax()), dtype=np.int64)


def logistic_weights(x_train, y_train, l2: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression fitted by L-BFGS (to convergence, strong Wolfe line search) on
    features standardized on the training rows, the penalty l2 |w|^2 on the standardized weights ->
    (w float64 [F, 3], b [3]) such that x @ w + b are the logits of raw rows x (standardization folded in)."""
    torch.manual_seed(seed)
    x_train = np.asarray(x_train, dtype=np.float64)
    mu, sd = x_train.mean(0), np.maximum(x_train.std(0), 1e-8)
    xt = torch.tensor((x_train - mu) / sd, dtype=torch.float64)
    yt = torch.tensor(y_train, dtype=torch.long)
    w = torch.zeros(xt.shape[1], 3, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + bias, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_std, b_std = w.detach().numpy(), bias.detach().numpy()
    w_raw = w_std / sd[:, None]
    return w_raw, b_std - mu @ w_raw


def fit_logistic_regression(x_train, y_train, l2: float = 1e-3, seed: int = 0):
    """logistic_weights as a function of rows [n, F] -> class probabilities float64 [n, 3]."""
    w, b = (torch.tensor(a) for a in logistic_weights(x_train, y_train, l2, seed))

    @torch.no_grad()
    def proba(x):
        return torch.softmax(torch.tensor(np.asarray(x), dtype=torch.float64) @ w + b, dim=1).numpy()

    return proba


def logistic_regression(x_train, y_train, x_test, l2: float = 1e-3, seed: int = 0) -> np.ndarray:
    """Predicted classes of x_test by fit_logistic_regression."""
    return fit_logistic_regression(x_train, y_train, l2, seed)(x_test).argmax(1)


def blend_weight(p_deep, p_linear, y, grid=np.arange(11) / 10) -> float:
    """The weight w of the deep model's probabilities in w p_deep + (1 - w) p_linear with the best macro-F1
    on rows `y` (validation rows: choosing it on the scored rows would be tuning on them)."""
    f1 = [scores(y, (w * p_deep + (1 - w) * p_linear).argmax(1))["macro_f1"] for w in grid]
    return float(grid[int(np.argmax(f1))])


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy and macro-F1 over the three classes (a class absent from both counts F1 = 0)."""
    acc = float((y_true == y_pred).mean()) if len(y_true) else float("nan")
    f1s = []
    for c in range(3):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": acc, "macro_f1": float(np.mean(f1s)), "n": int(len(y_true))}
