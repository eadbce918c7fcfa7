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
constexpr int kSpinBeforeSleep = 1 << 14;
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
}

EnvPool::Scratch EnvPool::make_scratch() const {
  const size_t K = static_cast<size_t>(cfg_.num_agents);
  Scratch s;
  s.discrete.resize(integer_actions(cfg_) ? kMaxChunk * K : 0);
  s.continuous.resize(integer_actions(cfg_) ? 0 : kMaxChunk * K * width_);
  return s;
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
  // Claim work in chunks: a few per thread per batch, so threads rarely touch the same cache lines.
  chunk_ = std::clamp<size_t>(static_cast<size_t>(batch_size) / (4 * static_cast<size_t>(num_threads)), 8, kMaxChunk);
  sync_chunks_ = (static_cast<int64_t>(num_envs) + static_cast<int64_t>(chunk_) - 1) / static_cast<int64_t>(chunk_);
  if (static_cast<uint64_t>(sync_chunks_) > kClaimMask) throw std::invalid_argument("num_envs: too many envs");
  // Rows in flight can reach num_envs past the block the caller holds.
  num_blocks_ = static_cast<size_t>((num_envs + batch_size - 1) / batch_size) + 1;
  const size_t K = static_cast<size_t>(cfg.num_agents);
  buf_.allocate(num_blocks_ * static_cast<size_t>(batch_size), cfg.num_agents,
                markets_[0].dim + kAccountFeatures + (is_quote(cfg.actions) ? kQuoteFeatures : 0));
  block_done_.reset(new std::atomic<int64_t>[num_blocks_]);
  for (size_t b = 0; b < num_blocks_; ++b) block_done_[b].store(0);
  in_flight_.assign(static_cast<size_t>(num_envs), 0);
  act_discrete_.assign(static_cast<size_t>(num_envs) * K, 0);
  act_continuous_.assign(static_cast<size_t>(num_envs) * K * width_, 0.0f);
  // Cells of up to chunk_ tasks; a full ring only makes send run queued tasks itself (see send).
  capacity_ = 2;
  while (capacity_ < 2 * (static_cast<uint64_t>(num_envs) + chunk_ - 1) / chunk_) capacity_ <<= 1;
  cells_.reset(new Cell[capacity_]);
  cell_discrete_.assign(integer_actions(cfg_) ? capacity_ * kMaxChunk * K : 0, 0);
  cell_continuous_.assign(integer_actions(cfg_) ? 0 : capacity_ * kMaxChunk * K * width_, 0.0f);
  caller_scratch_ = make_scratch();
  for (uint64_t i = 0; i < capacity_; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  envs_.reserve(num_envs);
  for (int i = 0; i < num_envs; ++i) {
    envs_.emplace_back(new TradingEnv(cfg_, markets_.data(), static_cast<int>(markets_.size()), i, seed + static_cast<uint64_t>(i)));
  }
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
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
  if (sync_pending_ || tail_.load(std::memory_order_acquire) != head_.load(std::memory_order_acquire)) {
    throw std::invalid_argument("env_id: actions are already in flight; recv their results first");
  }
  for (int e = 0; e < num_envs_; ++e) {
    if (in_flight_[static_cast<size_t>(e)]) {
      throw std::invalid_argument("env_id: env " + std::to_string(e) +
                                  " already has an action in flight; recv its result first");
    }
  }
  const size_t nk = static_cast<size_t>(num_envs_) * static_cast<size_t>(cfg_.num_agents);
  if (!reset) {
    if (discrete) std::copy(discrete, discrete + nk, act_discrete_.begin());
    if (continuous) std::copy(continuous, continuous + nk * width_, act_continuous_.begin());
  }
  sync_base_ = sync_rows_;
  sync_rows_ += static_cast<uint64_t>(num_envs_);
  sync_reset_ = reset;
  sync_done_.store(0, std::memory_order_relaxed);
  sync_pending_ = true;
  ++sync_gen_;
  sync_claim_.store(pack_claim(sync_gen_, 0, static_cast<uint64_t>(sync_chunks_)),
                    std::memory_order_release);  // publishes everything above
  if (sleepers_.load(std::memory_order_acquire) > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
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
  // Tasks go out in cells of up to chunk_ (issue 18: a cell per task cost the caller a cache miss
  // per env on the sequence numbers the workers had written, which capped async near 5 M steps/s);
  // each cell is published at once, so workers start on a large send before it is all queued.
  // Actions travel in the cell with their tasks (written and copied out in sequence), not at their
  // env's index: scattered per-env writes cost a cache line moved between cores per env step (issue 18).
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  for (int i = 0; i < n; ++tail) {
    Cell& cell = cells_[tail & (capacity_ - 1)];
    while (cell.seq.load(std::memory_order_acquire) != tail) {  // a worker is still copying it out,
      if (!run_some(caller_scratch_)) std::this_thread::yield();               // or the ring is full: run tasks
    }
    const int m = std::min(static_cast<int>(chunk_), n - i);
    for (int j = 0; j < m; ++j, ++i) {
      const int32_t e = env_ids[i];
      if (!reset) {
        const size_t at = (static_cast<size_t>(tail & (capacity_ - 1)) * kMaxChunk + static_cast<size_t>(j)) * K;
        if (discrete) std::copy(discrete + i * K, discrete + (i + 1) * K, cell_discrete_.begin() + at);
        if (continuous) {
          std::copy(continuous + i * K * width_, continuous + (i + 1) * K * width_, cell_continuous_.begin() + at * width_);
        }
      }
      const int64_t row = sync_mode_ ? static_cast<int64_t>(sync_rows_ + static_cast<uint64_t>(i)) : -1;
      cell.tasks[j] = Task{e, static_cast<uint8_t>(reset), row};
    }
    cell.count = static_cast<uint32_t>(m);
    cell.seq.store(tail + 1, std::memory_order_relaxed);
    tail_.store(tail + 1, std::memory_order_release);  // publishes the cell and its envs' actions
  }
  if (sync_mode_) sync_rows_ += static_cast<uint64_t>(n);
  sent_tasks_ += static_cast<uint64_t>(n);
  if (sleepers_.load(std::memory_order_acquire) > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    cv_.notify_all();
  }
}

size_t EnvPool::run_task(const Task& task, uint64_t row, const int64_t* discrete, const float* continuous) {
  const size_t slot = static_cast<size_t>(row % buf_.rows);
  OutRow out = buf_.row(slot);
  TradingEnv& env = *envs_[task.env];
  if (task.reset) {
    env.reset(out);
  } else {
    env.step(discrete, continuous, out);
  }
  return static_cast<size_t>((row / static_cast<uint64_t>(batch_size_)) % num_blocks_);
}

size_t EnvPool::run_some(Scratch& scratch) {
  uint64_t h = head_.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t t = tail_.load(std::memory_order_acquire);
    if (h >= t) return 0;
    if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      Cell& cell = cells_[h & (capacity_ - 1)];  // copy out, then hand the cell back to the producer
      const uint64_t n = cell.count;
      Task local[kMaxChunk];
      std::copy(cell.tasks, cell.tasks + n, local);
      const size_t K = static_cast<size_t>(cfg_.num_agents);
      const size_t at = static_cast<size_t>(h & (capacity_ - 1)) * kMaxChunk * K;
      const bool ints = integer_actions(cfg_);
      if (ints) {
        std::copy(cell_discrete_.begin() + at, cell_discrete_.begin() + at + n * K, scratch.discrete.begin());
      } else {
        std::copy(cell_continuous_.begin() + at * width_, cell_continuous_.begin() + (at + n * K) * width_,
                  scratch.continuous.begin());
      }
      cell.seq.store(h + capacity_, std::memory_order_release);
      // Async rows: one reservation per chunk, not per env (issue 18: a counter every thread bumped
      // per env step capped the async pool near 5 M steps/s whatever the thread count), so a chunk's
      // rows are also contiguous. acq_rel: the row counter orders these writes after the caller's
      // reads of the rows' previous use (a chunk claimed early may take rows handed out after the
      // caller read those slots).
      const uint64_t row0 = sync_mode_ ? 0 : next_row_.fetch_add(n, std::memory_order_acq_rel);
      auto row = [&](uint64_t i) { return sync_mode_ ? static_cast<uint64_t>(local[i].row) : row0 + i; };
      // One atomic add per block touched, not per env: the counters are shared by every thread.
      auto run = [&](uint64_t i) {
        return ints ? run_task(local[i], row(i), scratch.discrete.data() + i * K, nullptr)
                    : run_task(local[i], row(i), nullptr, scratch.continuous.data() + i * K * width_);
      };
      size_t block = run(0);
      int64_t count = 1;
      for (uint64_t i = 1; i < n; ++i) {
        const size_t b = run(i);
        if (b != block) {
          block_done_[block].fetch_add(count, std::memory_order_release);
          block = b;
          count = 0;
        }
        ++count;
      }
      block_done_[block].fetch_add(count, std::memory_order_release);
      return static_cast<size_t>(n);
    }
  }
}

void EnvPool::worker_loop() {
  Scratch scratch = make_scratch();
  int idle = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (run_some(scratch) || run_sync_chunks(false)) {
      idle = 0;
      continue;
    }
    if (++idle < kSpinBeforeSleep) {
      TRADER_PAUSE();
      continue;
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_acq_rel);
    cv_.wait(lk, [this] {
      return stop_.load() || head_.load(std::memory_order_acquire) < tail_.load(std::memory_order_acquire) ||
             claim_open(sync_claim_.load(std::memory_order_acquire));
    });
    sleepers_.fetch_sub(1, std::memory_order_acq_rel);
    idle = 0;
  }
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
  const size_t block = static_cast<size_t>((read_row_ / static_cast<uint64_t>(batch_size_)) % num_blocks_);
  std::atomic<int64_t>& done = block_done_[block];
  int idle = 0;
  while (done.load(std::memory_order_acquire) < batch_size_) {
    if (run_some(caller_scratch_)) continue;  // the caller steps envs too
    // Rows handed out so far: sync mode reserves them at send (both paths), async mode per task.
    const uint64_t sent = sync_mode_ ? sync_rows_ : sent_tasks_;
    if (sent < read_row_ + static_cast<uint64_t>(batch_size_)) {
      throw std::runtime_error("recv: " + std::to_string(sent - read_row_) +
                               " results can still come but a batch needs " + std::to_string(batch_size_) +
                               "; send more actions first");
    }
    if (++idle > 64) std::this_thread::yield();
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
