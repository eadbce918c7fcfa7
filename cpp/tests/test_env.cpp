// Tests of the trading env pool under sanitizers: the same trajectories with 1 or 2 threads, sync
// or async, for market orders and for quotes (resting orders replayed against the market stream),
// a stress run of the async queue, and the live execution kernel grown row by row against the env. Market data: the bundled sample, replayed and
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
#include "exec/live_kernel.h"

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

// Output buffers of one env row (K = 1).
struct OneRow {
  std::vector<float> obs;
#define TRADER_ONE_FIELD(name, type, per_agent, doc) type name = 0;
  TRADER_ENV_OUTPUTS(TRADER_ONE_FIELD)
#undef TRADER_ONE_FIELD
  OutBase base{};
  explicit OneRow(int64_t obs_dim) : obs(static_cast<size_t>(obs_dim)) {
    base.obs = obs.data();
    base.obs_dim = obs_dim;
#define TRADER_ONE_BIND(name, type, per_agent, doc) base.name = &name;
    TRADER_ENV_OUTPUTS(TRADER_ONE_BIND)
#undef TRADER_ONE_BIND
  }
};

// The live kernel, its market growing one row (and one segment of market events) at a time, equals a
// TradingEnv over the whole market from the same start row: quotes with latencies and flattening; and
// the orders plan() announces before a step are the ones the step sends.
void live_kernel_equals_env(const Market& m) {
  EnvConfig c = config(1, true);
  c.horizon = 400;
  const int64_t r0 = 50;
  MarketData d = data_of(m, 1e-6, r0, r0);
  TradingEnv env(c, &d, 1, 0, 7);
  OneRow want(env.obs_dim());
  OutRow want_row{&want.base, 0, 0};
  env.reset(want_row);
  LiveKernel k(c, m.levels, m.dim, 0.01, 1e-6);
  auto append = [&](int64_t r) {
    const int64_t from = r > r0 ? m.starts[static_cast<size_t>(r - 1)] : 0;
    const int64_t to = r > r0 ? m.starts[static_cast<size_t>(r)] : 0;
    k.append(&m.book[static_cast<size_t>(r * 40)], &m.features[static_cast<size_t>(r * m.dim)], m.ts[static_cast<size_t>(r)],
             m.stream.events.data() + from, static_cast<size_t>(to - from));
  };
  append(r0);
  k.reset();
  CHECK(std::memcmp(k.obs(), want.obs.data(), want.obs.size() * sizeof(float)) == 0);
  int64_t quoted = 0, fills = 0;
  for (int64_t i = 1; i < 300; ++i) {
    const int64_t a = (i * 7) % 50;
    const OrderPlan p = k.plan(&a, nullptr);
    append(r0 + i);
    k.step(&a, nullptr);
    env.step(&a, nullptr, want_row);
    CHECK(std::memcmp(k.obs(), want.obs.data(), want.obs.size() * sizeof(float)) == 0);
    const OutBase& got = k.out();
    CHECK(*got.position == want.position && *got.equity == want.equity && *got.fees == want.fees);
    CHECK(*got.bid_price == want.bid_price && *got.ask_price == want.ask_price);
    int64_t announced = 0;
    for (const auto& s : p.side) announced += s.price > 0 && !s.kept ? s.lots : 0;
    CHECK(announced == want.quoted);
    quoted += want.quoted;
    fills += static_cast<int64_t>(k.fills().size());
  }
  CHECK(quoted > 0 && fills > 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: test_env <sample folder>\n");
    return 2;
  }
  const Market m = load_market(argv[1]);
  CHECK(m.rows > 1000);
  live_kernel_equals_env(m);
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
