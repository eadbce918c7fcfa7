// CPU time of the env kernel alone (no Python, no pool): 1,024 envs of the bundled sample stepped S
// steps by T threads, each thread timing only its own env steps (CLOCK_THREAD_CPUTIME_ID), so the
// number is per env-step CPU whatever else runs on the machine; under callgrind it gives instruction
// counts per env-step (issue 11). Envs are split between threads either in fixed contiguous shares ("static":
// an env always runs on the same core) or in chunks of 64 reassigned every step ("shuffled": what a
// work-sharing pool can do).
//
// Build (from the checkout, after the core's cmake build):
//   g++ -O3 -std=c++17 -Icpp benchmarks/env_step_cpu.cpp build/dev/libtrader_core.a -lz -lpthread -o build/env_step_cpu
// Run: build/env_step_cpu python/trader/data/sample <quote|discrete> <threads> <steps> <static|shuffled>
// Instructions per env-step (divide by 1,024 x steps):
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='trader::TradingEnv::step*'
//       build/env_step_cpu python/trader/data/sample quote 1 300 static
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "book/replay.h"
#include "env/env_pool.h"
#include "events/npy_events.h"

using namespace trader;

namespace {
double thread_cpu_s() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
double wall_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int usage(const char* why) {
  std::fprintf(stderr,
               "env_step_cpu: %s\nusage: env_step_cpu <sample folder> <quote|discrete> <threads >= 1> "
               "<steps >= 1> <static|shuffled>\n",
               why);
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) return usage("expected 5 arguments");
  const std::string folder = argv[1], env = argv[2], split = argv[5];
  const int threads = std::atoi(argv[3]), steps = std::atoi(argv[4]);
  if (env != "quote" && env != "discrete") return usage("env: expected quote or discrete");
  if (threads < 1) return usage("threads: expected an integer >= 1");
  if (steps < 1) return usage("steps: expected an integer >= 1");
  if (split != "static" && split != "shuffled") return usage("split: expected static or shuffled");
  // The bundled sample on the 100 ms grid, top 10 levels, as trader.sim.load_market builds it; the
  // features are a constant block of the sample's width (46 floats), copied into every observation.
  std::vector<Event> ev = read_events_npy(folder + "/events.npy");
  const SamplePlan plan = plan_samples(ev.data(), ev.size(), 100'000'000, Clock::kExchange);
  std::vector<int64_t> ts(plan.rows), book(plan.rows * 40), flow(plan.rows * 2);
  MarketStream stream;
  sample_top(ev.data(), ev.size(), plan, 10, ts.data(), book.data(), flow.data(), &stream);
  size_t first = 0;
  while (first < plan.rows && (book[first * 40] <= 0 || book[first * 40 + 2] <= 0)) ++first;
  const int64_t rows = static_cast<int64_t>(plan.rows - first), dim = 46;
  std::vector<float> features(static_cast<size_t>(rows * dim), 0.5f);
  MarketData data;
  data.book = book.data() + first * 40;
  data.features = features.data();
  data.ts = ts.data() + first;
  data.stream = stream.events.data();
  data.stream_starts = stream.starts.data() + first;
  data.has_trades = stream.trades > 0;
  data.rows = rows;
  data.levels = 10;
  data.dim = dim;
  data.tick_size = 0.01;  // the sample's tick and lot
  data.lot_size = 1e-5;
  data.prepare();
  EnvConfig cfg;  // the bench's env: defaults, horizon 500
  cfg.horizon = 500;
  data.start_max = rows - 1 - cfg.horizon;
  if (env == "quote") cfg.actions = ActionType::kQuote;
  constexpr int kEnvs = 1024, kChunk = 64, kBatches = 64;
  std::vector<std::unique_ptr<TradingEnv>> envs;
  for (int i = 0; i < kEnvs; ++i) envs.emplace_back(new TradingEnv(cfg, &data, 1, i, static_cast<uint64_t>(i)));
  PoolBuffers out;
  out.allocate(kEnvs, 1, envs[0]->obs_dim());
  const int64_t n_actions = env == "quote" ? (cfg.quote_levels + 1) * (cfg.quote_levels + 1) : 3;
  std::mt19937_64 rng(0);
  std::vector<int64_t> actions(static_cast<size_t>(kBatches * kEnvs));
  for (auto& a : actions) a = static_cast<int64_t>(rng() % static_cast<uint64_t>(n_actions));
  for (int e = 0; e < kEnvs; ++e) {
    OutRow row = out.row(static_cast<size_t>(e));
    envs[static_cast<size_t>(e)]->reset(row);
  }
  std::atomic<int> arrived{0};
  std::vector<double> cpu(static_cast<size_t>(threads), 0.0);
  auto work = [&](int t) {
    for (int s = 0; s < steps; ++s) {
      const double c0 = thread_cpu_s();
      const int64_t* a = actions.data() + static_cast<size_t>(s % kBatches) * kEnvs;
      for (int e = 0; e < kEnvs; ++e) {
        const int chunk = e / kChunk;
        const int owner = split == "static" ? e * threads / kEnvs
                                            : static_cast<int>((static_cast<uint32_t>(chunk) * 2654435761u +
                                                                static_cast<uint32_t>(s) * 40503u) >> 7) % threads;
        if (owner != t) continue;
        OutRow row = out.row(static_cast<size_t>(e));
        envs[static_cast<size_t>(e)]->step(a + e, nullptr, row);
      }
      cpu[static_cast<size_t>(t)] += thread_cpu_s() - c0;
      arrived.fetch_add(1);  // every thread finishes step s before any starts s + 1
      while (arrived.load() < (s + 1) * threads) std::this_thread::yield();
    }
  };
  const double w0 = wall_s();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  const double wall = wall_s() - w0;
  double total_cpu = 0;
  for (double c : cpu) total_cpu += c;
  const double env_steps = static_cast<double>(kEnvs) * steps;
  std::printf("%s env, %d envs, %d threads, %s: %.1f ns CPU per env-step (%.2f M env-steps per CPU-second), "
              "wall %.2f M env-steps/s\n",
              env.c_str(), kEnvs, threads, split.c_str(), total_cpu / env_steps * 1e9, env_steps / total_cpu / 1e6,
              env_steps / wall / 1e6);
  return 0;
}
