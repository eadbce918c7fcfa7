"""trader-sim convert / verify / info on real files, as a user runs them: raw files with streams
that carry no book data, folders of daily files (collections), snapshot tables with --market, LOBSTER
pairs, the Binance full-depth CSV, empty files, and error hints that name the command's own flags."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import orjson
from click.testing import CliRunner

from conftest import shared
from trader.data.dataset import load_collection, load_dataset
from trader.sim.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def with_mark_price(src, dst):
    """A copy of a raw USD-M file with a markPrice@1s line after every 50th line, as hftbacktest's
    collector records it (one a second)."""
    out = []
    for k, raw in enumerate(gzip.decompress(src.read_bytes()).splitlines()):
        out.append(raw)
        if k % 50 == 49:
            ts = raw.split(b" ", 1)[0]
            data = {"e": "markPriceUpdate", "E": 1723161256000, "s": "BTCUSDT", "p": "61800.10", "i": "61790.00",
                    "P": "61795.00", "r": "0.00010000", "T": 1723190400000}
            out.append(ts + b" " + orjson.dumps({"stream": "btcusdt@markPrice@1s", "data": data}))
    dst.write_bytes(gzip.compress(b"\n".join(out) + b"\n"))
    return len(out) - k - 1


def test_verify_raw_usdm_with_mark_price_lines(tmp_path):
    src = shared("binance_hftbacktest_raw_feed", "usdm", "btcusdt_20240808.gz")
    n_mark = with_mark_price(src, tmp_path / "btcusdt_20240808.gz")
    res = run("verify", "--json", tmp_path / "btcusdt_20240808.gz")
    assert res.exit_code == 0, res.output
    (r,) = json.loads(res.stdout)
    assert (r["compared"], r["matched"], r["mismatched"]) == (629, 629, 0)  # data README
    assert r["skipped_streams"] == {"markPrice@1s": n_mark} and n_mark > 1000
    table = run("verify", tmp_path / "btcusdt_20240808.gz")
    assert table.exit_code == 0 and f"markPrice@1s {n_mark:,}" in table.stdout
    assert "reading btcusdt_20240808.gz (1/1" in table.stderr  # progress


def test_error_hints_name_the_commands_own_flags(tmp_path):
    src = shared("binance_hftbacktest_raw_feed", "spot", "btcusdt_20240808.gz")
    lines = gzip.decompress(src.read_bytes()).splitlines()[:300]
    lines.insert(60, lines[59].split(b" ")[0] + b' {"stream":"btcusdt@fooBar","data":{"s":"BTCUSDT"}}')
    path = tmp_path / "feed.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    for cmd in (("convert", path, "-o", tmp_path / "out"), ("verify", path)):
        res = run(*cmd)
        assert res.exit_code == 2
        assert f"{path}:61: unknown stream kind 'fooBar'" in res.stderr
        assert "pass --ignore-stream fooBar to go on" in res.stderr
        assert "ignore_streams" not in res.stderr
    assert run("verify", "--ignore-stream", "fooBar", path).exit_code == 0
    # a gap: convert stops and names --on-gap; verify resyncs by default and reports it
    lines.pop(60)
    depth = [i for i, ln in enumerate(lines) if b"@depth" in ln and i > 80]
    gapped = tmp_path / "gap.gz"
    gapped.write_bytes(gzip.compress(b"\n".join(lines[: depth[2]] + lines[depth[2] + 1 :])))
    res = run("convert", gapped, "-o", tmp_path / "out2")
    assert res.exit_code == 2 and "update-id gap" in res.stderr and "pass --on-gap resync to go on" in res.stderr
    res = run("verify", "--json", gapped)
    assert res.exit_code == 1 and len(json.loads(res.stdout)[0]["gaps"]) == 1


def test_folder_of_daily_files_is_a_collection(tmp_path):
    src = shared("binance_hftbacktest_raw_feed", "usdm")
    days = tmp_path / "days"
    days.mkdir()
    for name in ("btcusdt_20240718.gz", "btcusdt_20240719.gz", "btcusdt_20240808.gz"):
        (days / name).write_bytes((src / name).read_bytes())
    out = tmp_path / "out"
    res = run("convert", days, "-o", out, "--tick-size", "0.1", "--lot-size", "0.001")
    assert res.exit_code == 0, res.output
    index = json.loads((out / "index.json").read_text())
    names = [d["name"] for d in index["datasets"]]
    assert names == ["binance_usdm_btcusdt_20240718T235700", "binance_usdm_btcusdt_20240808T235415"]
    assert index["datasets"][0]["sources"] == ["btcusdt_20240718.gz", "btcusdt_20240719.gz"]
    parts = load_collection(out)
    whole = load_dataset(out)  # the learners' entry point takes the collection as one dataset
    assert len(whole.events) == sum(len(p.events) for p in parts)
    assert [s["name"] for s in whole.meta["sources"]] == ["btcusdt_20240718.gz", "btcusdt_20240719.gz",
                                                          "btcusdt_20240808.gz"]
    second = whole.events[len(parts[0].events):]
    assert np.array_equal(second["price"], parts[1].events["price"]) and (second["file"] == 2).all()
    ts, book, _ = whole.sample_top(depth=1)
    assert (book[:, 0, 0] < book[:, 0, 2]).all()  # never crossed: the book restarts at each sequence
    # On a 100 ms grid each sequence is sampled on its own: no rows for the three weeks between them.
    ts, book, _ = whole.sample_top(depth=1, interval_ns=100_000_000)
    assert len(ts) == sum(len(p.sample_top(depth=1, interval_ns=100_000_000)[0]) for p in parts) < 20_000
    from trader.sim.env import load_market

    with pytest.raises(ValueError, match="collection of 2 sequences"):  # the env trades one sequence at a time
        load_market(out)
    market = load_market(out / names[0])  # what `trader train --data OUT/<sequence>` does
    assert len(market.book) > 1_000 and market.tick_size == 0.1
    res = run("info", out)
    assert res.exit_code == 0 and "collection" in res.stdout and names[1] in res.stdout
    assert len(json.loads(run("info", "--json", out).stdout)) == 2
    res = run("verify", "--json", out)
    assert res.exit_code == 0 and [r["matched"] for r in json.loads(res.stdout)] == [625, 629]


def test_snapshot_table_market_option(tmp_path):
    path = shared("bitfinex_btcusd_book25_snapshots")
    res = run("convert", path, "-o", tmp_path / "bfx", "--market", "usdm")
    assert res.exit_code == 0, res.output
    assert load_dataset(tmp_path / "bfx").meta["market"] == "usdm"
    res = run("convert", path, "-o", tmp_path / "bfx2", "--market", "perp")
    assert res.exit_code == 2 and "--market" in res.output


def test_lobster_pair_and_full_depth_csv(tmp_path):
    lob = shared("lobster_aapl_2012-06-21_level10_first999")
    assert run("convert", lob, "-o", tmp_path / "pair").exit_code == 0
    assert run("convert", *lob.glob("*orderbook*"), "-o", tmp_path / "book").exit_code == 0
    assert np.array_equal(load_dataset(tmp_path / "pair").events, load_dataset(tmp_path / "book").events)
    fd = shared("binance_spot_btcusdt_fulldepth_snapshots")
    res = run("convert", fd, "-o", tmp_path / "fd")
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "fd")
    assert ds.meta["report"]["lines"] == {"comment": 30, "level": 20000}  # data README section 3
    assert ds.meta["symbol"] == "BTCUSDT" and ds.meta["tick_size"] == "0.01"
    clears = ds.events[ds.events["kind"] == 1]
    assert clears["update_id"].tolist() == [66711751276, 66813971942]
    _, book, _ = ds.sample_top(depth=1)
    assert book[0, 0, 0] * 0.01 == 83759.99 and book[0, 0, 2] * 0.01 == 83760.00  # README: best bid / ask


def test_empty_file_says_it_is_empty(tmp_path):
    for name, data in (("empty.csv", b""), ("empty.gz", gzip.compress(b""))):
        path = tmp_path / name
        path.write_bytes(data)
        res = run("convert", path, "-o", tmp_path / "out")
        assert res.exit_code == 2 and f"{path}: the file is empty" in res.stderr
