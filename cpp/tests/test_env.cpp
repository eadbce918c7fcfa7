// Tests of the trading env pool under sanitizers: the same trajectories with 1 or 2 threads, sync
// or async, for market orders and for quotes (resting orders replayed against the market stream),
// and a stress run of the async queue. Market data: the bundled sample, replayed and
// sampled on a 100 ms grid.
//
// Usage: test_env <sample folder>. Prints "N passed, M failed" on its own line; exits 1 on failure.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "book/replay.h"
#include "env/env_pool.h"
#include "events/npy_events.h"

using namespace trader;

namespace {
uint64_t g_passed = 0, g_failed = 0;
#define CHECK(expr)                                                               \
  do {                                                                            \
    if (expr) {                                                                   \
      ++g_passed;                                                                 \
    } else {                                                                      \
      if (g_failed < 50) std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
      ++g_failed;                                                                 \
    }                                                                             \
  } while (0)

struct Market {
  std::vector<int64_t> book;
  std::vector<float> features;
  std::vector<int64_t> ts;
  MarketStream stream;
  std::vector<int64_t> starts;  // stream.starts from the first kept row
  int64_t rows = 0, levels = 10, dim = 4;
};

Market load_market(const std::string& folder) {
  std::vector<Event> ev = read_events_npy(folder + "/events.npy");
  SamplePlan plan = plan_samples(ev.data(), ev.size(), 100'000'000, Clock::kExchange);
  Market m;
  std::vector<int64_t> ts(plan.rows), book(plan.rows * 10 * 4), flow(plan.rows * 2);
  sample_top(ev.data(), ev.size(), plan, 10, ts.data(), book.data(), flow.data(), &m.stream);
  size_t first = 0;
  while (first < plan.rows && (book[first * 40] <= 0 || book[first * 40 + 2] <= 0)) ++first;
  m.rows = static_cast<int64_t>(plan.rows - first);
  m.book.assign(book.begin() + static_cast<long>(first * 40), book.end());
  m.ts.assign(ts.begin() + static_cast<long>(first), ts.end());
  m.starts.assign(m.stream.starts.begin() + static_cast<long>(first), m.stream.starts.end());
  m.features.resize(static_cast<size_t>(m.rows * m.dim));
  for (int64_t r = 0; r < m.rows; ++r) {  // a few deterministic columns from the book
    const int64_t* b = &m.book[static_cast<size_t>(r * 40)];
    float* f = &m.features[static_cast<size_t>(r * m.dim)];
    f[0] = static_cast<float>(b[2] - b[0]);
    f[1] = static_cast<float>(b[1]) * 1e-6f;
    f[2] = static_cast<float>(b[3]) * 1e-6f;
    f[3] = static_cast<float>(r % 7);
  }
  return m;
}

// The market as one dataset of a pool: tick 0.01, the given lot size, episodes starting in
// [start_min, start_max] (start_max -1: the last row that leaves a full horizon of 60).
MarketData data_of(const Market& m, double lot_size = 1e-6, int64_t start_min = 0, int64_t start_max = -1) {
  MarketData d;
  d.tick_size = 0.01;
  d.lot_size = lot_size;
  d.start_min = start_min;
  d.start_max = start_max >= 0 ? start_max : m.rows - 1 - 60;
  d.book = m.book.data();
  d.features = m.features.data();
  d.rows = m.rows;
  d.levels = m.levels;
  d.dim = m.dim;
  d.ts = m.ts.data();
  d.stream = m.stream.events.data();
  d.stream_starts = m.starts.data();
  d.has_trades = m.stream.trades > 0;
  d.prepare();
  return d;
}

EnvConfig config(int agents, bool quotes) {
  EnvConfig c;
  c.horizon = 60;
  c.num_agents = agents;
  c.tick_size = 0.01;
  c.lot_size = 1e-6;
  if (quotes) {
    c.actions = ActionType::kQuote;
    c.quote_flatten = true;
    c.quote_min_ticks = -1;
    c.quote_levels = 4;
    c.trade_size = 0.01;
    c.max_position = 0.05;
    c.order_latency_ns = 20'000'000;
    c.cancel_latency_ns = 5'000'000;
    c.maker_fee_bps = -0.5;
  } else {
    c.trade_size = 2.0;  // 2 BTC: walks several levels
    c.max_position = 6.0;
    c.order_latency_ns = 100'000'000;  // one row
    c.taker_fee_bps = 2.0;
  }
  validate(c);
  validate_depth(c, 10);
  return c;
}

// Per env: the sequence of (reward, position, t) over `steps` results, with actions a function of
// (env, step).
using Traj = std::vector<std::vector<double>>;

// datasets = 2: the pool holds the market twice, the second time on a 10x coarser lot and a shorter
// start window (issue 13: each episode draws its dataset, then trades in that dataset's lots).
Traj run(const Market& m, int agents, int num_envs, int batch, int threads, int steps, bool quotes = false,
         int datasets = 1) {
  std::vector<MarketData> markets{data_of(m)};
  if (datasets == 2) markets.push_back(data_of(m, 1e-5, 100, 400));
  EnvPool pool(config(agents, quotes), std::move(markets), num_envs, batch, threads, 42);
  const size_t num_actions = quotes ? 50 : 3;
  PoolBuffers& b = pool.buffers();
  Traj traj(static_cast<size_t>(num_envs));
  std::vector<int32_t> all(static_cast<size_t>(num_envs));
  for (int i = 0; i < num_envs; ++i) all[static_cast<size_t>(i)] = i;
  const bool sync = batch == num_envs;  // sync mode: the chunked send_all path, rows in env order
  if (sync) {
    pool.send_all(nullptr, nullptr, true);
  } else {
    pool.send(nullptr, nullptr, all.data(), num_envs, true);
  }
  const size_t keep = static_cast<size_t>(steps) * static_cast<size_t>(2 * agents + 1);  // values per env
  size_t min_len = 0;
  int64_t fills = 0;
  std::vector<int64_t> actions;
  while (min_len < keep) {
    const size_t first = pool.recv();
    std::vector<int32_t> ids;
    for (int j = 0; j < batch; ++j) {
      const size_t row = first + static_cast<size_t>(j);
      const int32_t e = b.env_id[row];
      ids.push_back(e);
      auto& t = traj[static_cast<size_t>(e)];
      for (int k = 0; k < agents; ++k) {
        t.push_back(b.reward[row * agents + k]);
        t.push_back(static_cast<double>(b.position[row * agents + k]));
        fills += b.maker_filled[row * agents + k];
      }
      t.push_back(static_cast<double>(b.t[row]));
    }
    actions.clear();
    for (int32_t e : ids) {
      const size_t n = traj[static_cast<size_t>(e)].size();
      for (int k = 0; k < agents; ++k) actions.push_back(static_cast<int64_t>((n * 7 + e * 3 + k) % num_actions));
    }
    if (sync) {
      for (int j = 0; j < batch; ++j) CHECK(ids[static_cast<size_t>(j)] == j);
      pool.send_all(actions.data(), nullptr, false);
    } else {
      pool.send(actions.data(), nullptr, ids.data(), batch, false);
    }
    min_len = SIZE_MAX;
    for (auto& t : traj) min_len = std::min(min_len, t.size());
  }
  for (auto& t : traj) t.resize(keep);
  if (quotes) CHECK(fills > 0);  // the quotes do get filled
  return traj;  // tasks still in flight finish before the pool's destructor joins its workers
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: test_env <sample folder>\n");
    return 2;
  }
  const Market m = load_market(argv[1]);
  CHECK(m.rows > 1000);
  for (bool quotes : {false, true}) {
    for (int agents : {1, 3}) {
      const Traj ref = run(m, agents, 16, 16, 1, 150, quotes);
      CHECK(run(m, agents, 16, 16, 2, 150, quotes) == ref);
      CHECK(run(m, agents, 16, 4, 1, 150, quotes) == ref);
      CHECK(run(m, agents, 16, 4, 2, 150, quotes) == ref);
      CHECK(run(m, agents, 16, 1, 2, 150, quotes) == ref);
    }
  }
  // Two datasets: the same trajectories whatever the threads and batches.
  const Traj two = run(m, 1, 16, 16, 1, 150, false, 2);
  CHECK(two != run(m, 1, 16, 16, 1, 150, false));
  CHECK(run(m, 1, 16, 4, 2, 150, false, 2) == two);
  CHECK(run(m, 3, 16, 1, 2, 150, true, 2) == run(m, 3, 16, 16, 1, 150, true, 2));
  // Stress: many small async batches on 2 threads, and the sync fast path on 2 threads.
  const Traj a = run(m, 1, 64, 8, 2, 400);
  const Traj b = run(m, 1, 64, 8, 2, 400);
  CHECK(a == b);
  CHECK(run(m, 1, 64, 64, 2, 400) == a);
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(g_passed),
              static_cast<unsigned long long>(g_failed));
  return g_failed ? 1 : 0;
}
