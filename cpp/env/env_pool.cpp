#include "env/env_pool.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TRADER_PAUSE() _mm_pause()
#else
#define TRADER_PAUSE() ((void)0)
#endif

namespace trader {

namespace {
// Idle passes of a waiting thread: pauses, then yields (issue 18: on one or two cores a thread
// spinning for work or a result can hold the core of the thread it waits for, e.g. the caller it
// shares a core with while another process runs on the other: async at 1 % of sync), then, for a
// worker, sleep.
constexpr int kSpinBeforeYield = 64;
constexpr int kSpinBeforeSleep = 1 << 12;
constexpr size_t kMaxChunk = 64;  // tasks a thread claims at once, at most

uint64_t pow2_above(uint64_t n) {
  uint64_t p = 2;
  while (p <= n) p <<= 1;
  return p;
}
}  // namespace

void PoolBuffers::allocate(size_t n, int k, int64_t dim) {
  rows = n;
  agents = k;
  obs_dim = dim;
  const size_t nk = n * static_cast<size_t>(k);
  obs.assign(nk * static_cast<size_t>(dim), 0.0f);
  base.obs = obs.data();
  base.obs_dim = dim;
#define TRADER_OUT_ALLOC(name, type, per_agent, doc) \
  name.assign(per_agent ? nk : n, type{});           \
  base.name = name.data();
  TRADER_ENV_OUTPUTS(TRADER_OUT_ALLOC)
#undef TRADER_OUT_ALLOC
  done.assign(n, 0);
}

int action_width(const EnvConfig& cfg) {
  return cfg.actions == ActionType::kQuoteContinuous ? (cfg.quote_flatten ? 3 : 2) : 1;
}

EnvPool::EnvPool(const EnvConfig& cfg, std::vector<MarketData> markets, int num_envs, int batch_size, int num_threads,
                 uint64_t seed)
    : cfg_(cfg),
      markets_(std::move(markets)),
      num_envs_(num_envs),
      batch_size_(batch_size),
      num_threads_(num_threads),
      width_(static_cast<size_t>(action_width(cfg))) {
  if (num_envs < 1) throw std::invalid_argument("num_envs: expected >= 1");
  if (batch_size < 1 || batch_size > num_envs) {
    throw std::invalid_argument("batch_size: expected 1 <= batch_size <= num_envs");
  }
  if (num_threads < 1) throw std::invalid_argument("num_threads: expected >= 1");
  if (markets_.empty()) throw std::invalid_argument("markets: expected at least one dataset");
  uint64_t offset = 0;
  for (size_t i = 0; i < markets_.size(); ++i) {
    MarketData& m = markets_[i];
    if (m.levels != markets_[0].levels || m.dim != markets_[0].dim) {
      throw std::invalid_argument("markets: dataset " + std::to_string(i) + " has " + std::to_string(m.levels) +
                                  " levels and " + std::to_string(m.dim) + " feature columns, dataset 0 has " +
                                  std::to_string(markets_[0].levels) + " and " + std::to_string(markets_[0].dim));
    }
    m.start_offset = offset;
    offset += static_cast<uint64_t>(m.start_max - m.start_min + 1);
  }
  sync_mode_ = batch_size == num_envs;
  // Async with one thread: one worker steps every env and the caller none (issue 18, envpool's
  // semantics), so stepping overlaps the caller's Python between recv and send. Otherwise the caller
  // is one of the num_threads and steps envs while it waits in recv.
  caller_steps_ = sync_mode_ || num_threads > 1;
  // Claim work in chunks: a few per thread per batch, so threads rarely touch the same cache lines.
  // A single worker shares with no one: the largest chunks, the fewest lines a send writes. Async
  // chunks are twice sync's: each moves its task slots, descriptor and counters between cores, and
  // homes keep the balance (issue 18, session 19). And at least 8 tasks per worker: the workers claim
  // from one queue front, whose line moves between their cores at every claim. With chunks of 16 and 8
  // tasks, 1,024 envs ran async at 0.72-0.78 of sync at 8 and 16 threads on a 16-core H100 host, with
  // 64 at 1.52-1.57; on 2 cores (one worker) chunks of 8 at 64 envs beat whole batches of 16
  // (benchmarks/README.md, session 20).
  const size_t threads = static_cast<size_t>(num_threads);
  chunk_ = !caller_steps_ ? kMaxChunk
           : sync_mode_   ? std::clamp<size_t>(static_cast<size_t>(batch_size) / (4 * threads), 8, kMaxChunk)
                          : std::clamp<size_t>(static_cast<size_t>(batch_size) / (2 * threads),
                                               std::min<size_t>(8 * (threads - 1), kMaxChunk), kMaxChunk);
  sync_chunks_ = (static_cast<int64_t>(num_envs) + static_cast<int64_t>(chunk_) - 1) / static_cast<int64_t>(chunk_);
  if (static_cast<uint64_t>(sync_chunks_) > kClaimMask) throw std::invalid_argument("num_envs: too many envs");
  // Rows in flight can reach num_envs past the block the caller holds. Async keeps twice the envs'
  // blocks: an env sent back in the order it came then alternates between two rows, each written by
  // the same env (on its home thread) every other round, where a ring one block longer than the envs
  // shifts every env to a row another thread wrote last (issue 18, session 19).
  const size_t env_blocks = static_cast<size_t>((num_envs + batch_size - 1) / batch_size);
  num_blocks_ = sync_mode_ ? env_blocks + 1 : 2 * env_blocks;
  const size_t K = static_cast<size_t>(cfg.num_agents);
  buf_.allocate(num_blocks_ * static_cast<size_t>(batch_size), cfg.num_agents,
                markets_[0].dim + kAccountFeatures + (is_quote(cfg.actions) ? kQuoteFeatures : 0));
  block_done_.reset(new BlockDone[num_blocks_]);
  in_flight_.assign(static_cast<size_t>(num_envs), 0);
  act_discrete_.assign(static_cast<size_t>(num_envs) * K, 0);
  act_continuous_.assign(static_cast<size_t>(num_envs) * K * width_, 0.0f);
  const uint64_t cap = pow2_above(static_cast<uint64_t>(num_envs));
  ring_mask_ = cap - 1;
  for (Queue& q : queues_) {
    q.chunks.reset(new Chunk[cap]);
    for (uint64_t i = 0; i < cap; ++i) q.chunks[i].claim.store(kByCaller, std::memory_order_relaxed);
  }
  const int num_workers = caller_steps_ ? num_threads - 1 : 1;
  // First homes: one chunk of envs in num_threads to the caller, the others to the workers.
  home_.resize(static_cast<size_t>(num_envs));
  for (int e = 0; e < num_envs; ++e) {
    const bool callers = num_threads == 1 || (static_cast<size_t>(e) / chunk_) % static_cast<size_t>(num_threads) == 0;
    home_[static_cast<size_t>(e)] = caller_steps_ && callers ? kCallerHome : kWorkerHome;
  }
  task_env_.assign(cap, 0);
  task_discrete_.assign(integer_actions(cfg_) ? cap * K : 0, 0);
  task_continuous_.assign(integer_actions(cfg_) ? 0 : cap * K * width_, 0.0f);
  envs_.reserve(num_envs);
  for (int i = 0; i < num_envs; ++i) {
    envs_.emplace_back(new TradingEnv(cfg_, markets_.data(), static_cast<int>(markets_.size()), i, seed + static_cast<uint64_t>(i)));
  }
  for (int i = 0; i < num_workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

EnvPool::~EnvPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
  for (auto& w : workers_) w.join();
}

void EnvPool::seed(uint64_t seed) {
  for (int i = 0; i < num_envs_; ++i) envs_[i]->reseed(seed + static_cast<uint64_t>(i));
}

void EnvPool::send_all(const int64_t* discrete, const float* continuous, bool reset) {
  if (!sync_mode_) throw std::logic_error("send_all: only in sync mode (batch_size == num_envs)");
  if (sent_ != read_row_) {
    throw std::invalid_argument("env_id: actions are already in flight; recv their results first");
  }
  const size_t nk = static_cast<size_t>(num_envs_) * static_cast<size_t>(cfg_.num_agents);
  if (!reset) {
    if (discrete) std::copy(discrete, discrete + nk, act_discrete_.begin());
    if (continuous) std::copy(continuous, continuous + nk * width_, act_continuous_.begin());
  }
  sync_base_ = sent_;
  sent_ += static_cast<uint64_t>(num_envs_);
  sync_reset_ = reset;
  sync_done_.store(0, std::memory_order_relaxed);
  sync_pending_ = true;
  ++sync_gen_;
  sync_claim_.store(pack_claim(sync_gen_, 0, static_cast<uint64_t>(sync_chunks_)),
                    std::memory_order_release);  // publishes everything above
  wake_sleepers();
}

size_t EnvPool::run_sync_chunks(bool from_front) {
  size_t ran = 0;
  uint64_t v = sync_claim_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t front = (v >> kClaimBits) & kClaimMask, back = v & kClaimMask;
    if (front >= back) return ran;
    // The caller takes chunks from the front, workers from the back: from one call to the next an env
    // is mostly stepped by the same thread, so its state stays in that core's cache.
    const uint64_t next = from_front ? v + (uint64_t{1} << kClaimBits) : v - 1;
    if (!sync_claim_.compare_exchange_weak(v, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
      continue;
    }
    const int64_t idx = static_cast<int64_t>(from_front ? front : back - 1);
    const size_t K = static_cast<size_t>(cfg_.num_agents);
    const int64_t lo = idx * static_cast<int64_t>(chunk_);
    const int64_t hi = std::min<int64_t>(num_envs_, lo + static_cast<int64_t>(chunk_));
    for (int64_t e = lo; e < hi; ++e) {
      OutRow out = buf_.row(static_cast<size_t>((sync_base_ + static_cast<uint64_t>(e)) % buf_.rows));
      TradingEnv& env = *envs_[static_cast<size_t>(e)];
      const size_t off = static_cast<size_t>(e) * K;
      if (sync_reset_) {
        env.reset(out);
      } else if (!integer_actions(cfg_)) {
        env.step(nullptr, act_continuous_.data() + off * width_, out);
      } else {
        env.step(act_discrete_.data() + off, nullptr, out);
      }
      buf_.done[out.r] = buf_.terminated[out.r] | buf_.truncated[out.r];
    }
    sync_done_.fetch_add(1, std::memory_order_release);
    ++ran;
    v = sync_claim_.load(std::memory_order_acquire);
  }
}

void EnvPool::send(const int64_t* discrete, const float* continuous, const int32_t* env_ids, int n,
                   bool reset) {
  if (sync_pending_) {
    throw std::invalid_argument("env_id: actions are already in flight; recv their results first");
  }
  const size_t K = static_cast<size_t>(cfg_.num_agents);
  // Check and mark in one pass: an id given twice finds its own mark. On an error the envs marked so
  // far are unmarked (none was in flight before: only this thread marks, workers only unmark).
  for (int i = 0; i < n; ++i) {
    const int32_t e = env_ids[i];
    std::string error;
    if (e < 0 || e >= num_envs_) {
      error = "env_id: " + std::to_string(e) + " is not in [0, " + std::to_string(num_envs_) + ")";
    } else if (in_flight_[static_cast<size_t>(e)]) {
      error = std::find(env_ids, env_ids + i, e) != env_ids + i
                  ? "env_id: ids must be unique (env " + std::to_string(e) + " is given twice)"
                  : "env_id: env " + std::to_string(e) + " already has an action in flight; recv its result first";
    }
    if (!error.empty()) {
      for (int j = 0; j < i; ++j) in_flight_[static_cast<size_t>(env_ids[j])] = 0;
      throw std::invalid_argument(error);
    }
    in_flight_[static_cast<size_t>(e)] = 1;
  }
  // Tasks go out in chunks, each published at once, so workers start on a large send before it is all
  // queued. Actions travel with their task, written and read in send order, not at their env's index:
  // scattered per-env writes cost a cache line moved between cores per env step (issue 18).
  uint64_t task = tasks_sent_, row = sent_;  // locals: no store to the pool's lines per task
  int32_t* task_env = task_env_.data();
  int64_t* task_discrete = task_discrete_.data();
  float* task_continuous = task_continuous_.data();
  const size_t W = K * width_;
  for (int i = 0; i < n;) {
    const int m = std::min(static_cast<int>(chunk_), n - i);
    Queue& q = queues_[home_[static_cast<size_t>(env_ids[i])]];
    const uint64_t c = q.published.load(std::memory_order_relaxed);
    Chunk& chunk = q.chunks[c & ring_mask_];
    chunk.first_task = task;
    chunk.first_row = row;
    chunk.count = static_cast<uint32_t>(m);
    chunk.reset = static_cast<uint8_t>(reset);
    for (int j = 0; j < m; ++j, ++i, ++task) {
      const size_t slot = static_cast<size_t>(task & ring_mask_);
      task_env[slot] = env_ids[i];
      if (!reset && discrete) {  // a few values a task: plain loops, no memmove call each
        for (size_t k = 0; k < K; ++k) task_discrete[slot * K + k] = discrete[i * K + k];
      }
      if (!reset && continuous) {
        for (size_t k = 0; k < W; ++k) task_continuous[slot * W + k] = continuous[i * W + k];
      }
    }
    row += static_cast<uint64_t>(m);
    chunk.claim.store(c << 2 | kOpen, std::memory_order_release);  // publishes the chunk and its tasks
    q.published.store(c + 1, std::memory_order_release);
  }
  tasks_sent_ = task;
  sent_ = row;
  caller_back_ = queues_[kWorkerHome].published.load(std::memory_order_relaxed);
  wake_sleepers();
}

// After publishing work. The caller stores the work then reads sleepers_; a worker going to sleep adds
// itself to sleepers_ then reads the queues (worker_loop). With a plain load here x86 may serve the load
// before the caller's store is visible while the worker reads the queues before its add is visible: both
// miss, and the worker sleeps on queued work until the next send (the store-load, Dekker, pattern). Both
// sides use a read-modify-write of sleepers_ instead: either the caller's comes later and sees the worker,
// or the worker's comes later and, acquiring from it, sees the work (no fence: TSan does not model them).
void EnvPool::wake_sleepers() {
  if (sleepers_.fetch_add(0, std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
}

size_t EnvPool::run_chunk(Queue& q, uint64_t c, bool by_caller) {
  const Chunk& chunk = q.chunks[c & ring_mask_];
  const uint8_t home = by_caller ? kCallerHome : kWorkerHome;
  const uint64_t first_task = chunk.first_task, first_row = chunk.first_row, n = chunk.count;
  const bool reset = chunk.reset != 0;
  const size_t K = static_cast<size_t>(cfg_.num_agents);
  const bool ints = integer_actions(cfg_);
  // One atomic add per block touched, not per env: the counters are shared by every thread. Buffer
  // rows and block boundaries advance by increments (no division per task).
  const size_t B = static_cast<size_t>(batch_size_);
  size_t slot_row = static_cast<size_t>(first_row % buf_.rows);
  size_t block = slot_row / B;
  size_t block_end = (block + 1) * B;
  int64_t count = 0;
  for (uint64_t i = 0; i < n; ++i, ++slot_row) {
    if (slot_row == block_end) {
      block_done_[block].n.fetch_add(count, std::memory_order_release);
      count = 0;
      if (slot_row == buf_.rows) slot_row = 0;
      block = slot_row / B;
      block_end = (block + 1) * B;
    }
    const size_t slot = static_cast<size_t>((first_task + i) & ring_mask_);
    OutRow out = buf_.row(slot_row);
    const size_t e = static_cast<size_t>(task_env_[slot]);
    if (home_[e] != home) home_[e] = home;  // written only when it moves: the line stays shared
    TradingEnv& env = *envs_[e];
    if (reset) {
      env.reset(out);
    } else if (ints) {
      env.step(task_discrete_.data() + slot * K, nullptr, out);
    } else {
      env.step(nullptr, task_continuous_.data() + slot * K * width_, out);
    }
    buf_.done[slot_row] = buf_.terminated[slot_row] | buf_.truncated[slot_row];
    ++count;
  }
  block_done_[block].n.fetch_add(count, std::memory_order_release);
  return static_cast<size_t>(n);
}

size_t EnvPool::run_front(Queue& q, bool by_caller) {
  uint64_t f = q.front.load(std::memory_order_acquire);
  for (;;) {
    if (f >= q.published.load(std::memory_order_acquire)) return 0;
    if (!q.front.compare_exchange_weak(f, f + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    uint64_t open = f << 2 | kOpen;
    if (q.chunks[f & ring_mask_].claim.compare_exchange_strong(open, f << 2 | (by_caller ? kByCaller : kByWorker),
                                                                     std::memory_order_acq_rel)) {
      return run_chunk(q, f, by_caller);
    }
    f = q.front.load(std::memory_order_acquire);  // the caller took it from the back
  }
}

size_t EnvPool::steal_back() {
  // The workers' chunks at or above caller_back_ were tried already; below the front they are taken.
  // A chunk claimed by a worker means every older chunk was taken at the front too.
  Queue& q = queues_[kWorkerHome];
  while (caller_back_ > q.front.load(std::memory_order_acquire)) {
    const uint64_t c = caller_back_ - 1;
    uint64_t open = c << 2 | kOpen;
    if (q.chunks[c & ring_mask_].claim.compare_exchange_strong(open, c << 2 | kByCaller,
                                                                     std::memory_order_acq_rel)) {
      caller_back_ = c;
      return run_chunk(q, c, true);
    }
    if ((open & 3) == kByWorker) {
      caller_back_ = q.front.load(std::memory_order_acquire);
      return 0;
    }
    caller_back_ = c;  // the caller's own steal of an earlier send
  }
  return 0;
}

void EnvPool::worker_loop() {
  int idle = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    // Own queue first, then the caller's oldest chunks (issue 18: homes keep envs on one core).
    if (run_front(queues_[kWorkerHome], false) || run_front(queues_[kCallerHome], false) || run_sync_chunks(false)) {
      idle = 0;
      continue;
    }
    if (++idle < kSpinBeforeSleep) {
      if (idle > kSpinBeforeYield) std::this_thread::yield();
      TRADER_PAUSE();
      continue;
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);  // pairs with wake_sleepers()
    cv_.wait(lk, [this] {
      return stop_.load() || queues_[kWorkerHome].open() || queues_[kCallerHome].open() ||
             claim_open(sync_claim_.load(std::memory_order_acquire));
    });
    sleepers_.fetch_sub(1, std::memory_order_acq_rel);
    idle = 0;
  }
}

bool EnvPool::ready() const {
  return !sync_pending_ && block_done_[next_block()].n.load(std::memory_order_acquire) >= batch_size_;
}

size_t EnvPool::recv() {
  if (sync_pending_) {
    while (run_sync_chunks(true)) {
    }
    while (sync_done_.load(std::memory_order_acquire) < sync_chunks_) TRADER_PAUSE();
    sync_pending_ = false;
    const size_t first = static_cast<size_t>((sync_base_ / static_cast<uint64_t>(batch_size_)) % num_blocks_) *
                         static_cast<size_t>(batch_size_);
    read_row_ += static_cast<uint64_t>(batch_size_);
    return first;
  }
  const size_t block = next_block();
  std::atomic<int64_t>& done = block_done_[block].n;
  int idle = 0;
  while (done.load(std::memory_order_acquire) < batch_size_) {
    if (caller_steps_ && (run_front(queues_[kCallerHome], true) || steal_back())) continue;
    if (sent_ < read_row_ + static_cast<uint64_t>(batch_size_)) {
      throw std::runtime_error("recv: " + std::to_string(sent_ - read_row_) +
                               " results can still come but a batch needs " + std::to_string(batch_size_) +
                               "; send more actions first");
    }
    if (++idle > kSpinBeforeYield) std::this_thread::yield();
    TRADER_PAUSE();
  }
  done.store(0, std::memory_order_relaxed);
  const size_t first = block * static_cast<size_t>(batch_size_);
  // An env stays in flight until its result is received: only the caller reads and writes the flags
  // (issue 18: flags cleared by the workers moved a cache line between cores per env step).
  const int32_t* ids = buf_.env_id.data() + first;
  for (int i = 0; i < batch_size_; ++i) in_flight_[static_cast<size_t>(ids[i])] = 0;
  read_row_ += static_cast<uint64_t>(batch_size_);
  return first;
}

}  // namespace trader
