// A pool of N trading envs stepped by a fixed set of threads, envpool-style.
//
// Output: one contiguous buffer per field, R blocks of B rows (B = batch_size). `send` queues (env,
// action) tasks; threads step envs and write each result into a row of the current block; `recv`
// waits for a full block and returns its index. With batch_size == num_envs (sync mode) the row of an
// env is its position in the send order, so `step` returns rows in env order; otherwise rows fill in
// order of completion and `env_id` says whose row it is. Threads: num_threads counts the caller,
// which steps envs too while it waits in recv; num_threads - 1 background workers.
// Each env owns its random state (seed + env_id), so results do not depend on the thread count.
// The pool holds one or more datasets (MarketData); each episode runs inside one (issue 13).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "env/trading_env.h"

namespace trader {

struct PoolBuffers {
  size_t rows = 0;  // R * B
  int agents = 1;
  int64_t obs_dim = 0;
  std::vector<float> obs;  // [rows, K, obs_dim]
#define TRADER_OUT_VEC(name, type, per_agent, doc) std::vector<type> name;  // [rows] or [rows, K]
  TRADER_ENV_OUTPUTS(TRADER_OUT_VEC)
#undef TRADER_OUT_VEC

  OutBase base;  // first elements of the buffers above

  void allocate(size_t rows, int agents, int64_t obs_dim);
  OutRow row(size_t r) const { return OutRow{&base, r, r * static_cast<size_t>(agents)}; }
};

// Floats per agent in a continuous action: 1 (target position), 2 or 3 (bid, ask[, flatten]).
int action_width(const EnvConfig& cfg);
// Integer actions (discrete, quote) or float actions (continuous, quote_continuous).
inline bool integer_actions(const EnvConfig& cfg) {
  return cfg.actions == ActionType::kDiscrete || cfg.actions == ActionType::kQuote;
}

class EnvPool {
 public:
  // markets: at least one, all with the same levels and dim (std::invalid_argument naming the dataset).
  EnvPool(const EnvConfig& cfg, std::vector<MarketData> markets, int num_envs, int batch_size, int num_threads,
          uint64_t seed);
  ~EnvPool();
  EnvPool(const EnvPool&) = delete;
  EnvPool& operator=(const EnvPool&) = delete;

  // Queue actions for envs `env_ids` (n of them); integer actions: n*K ints, float actions: n*K*width
  // floats (one of the two is null). reset = true ignores actions and resets the envs.
  void send(const int64_t* discrete, const float* continuous, const int32_t* env_ids, int n, bool reset);
  // Sync mode, all envs in env order: actions for env i at row i (n = num_envs). Threads claim
  // chunks of envs from one counter (no per-env queue entries); the caller steps envs too in recv.
  void send_all(const int64_t* discrete, const float* continuous, bool reset);
  // Wait for the next full block; returns its first row index in the buffers.
  size_t recv();
  // Reseed every env with seed + env_id (takes effect at their next reset).
  void seed(uint64_t seed);

  int num_envs() const { return num_envs_; }
  int batch_size() const { return batch_size_; }
  int num_threads() const { return num_threads_; }
  const EnvConfig& config() const { return cfg_; }
  const std::vector<MarketData>& markets() const { return markets_; }
  PoolBuffers& buffers() { return buf_; }
  size_t num_blocks() const { return num_blocks_; }

 private:
  struct Task {
    int32_t env;
    uint8_t reset;
    int64_t row;  // -1: next free row (async)
  };
  // A thread's copy of the actions of the cell it runs (the cell goes back to the producer at once).
  struct Scratch {
    std::vector<int64_t> discrete;  // [kMaxChunk, K]
    std::vector<float> continuous;  // [kMaxChunk, K, action_width]
  };
  Scratch make_scratch() const;
  void worker_loop();
  // Claims one cell of tasks and runs them; returns how many it ran (0: none queued).
  size_t run_some(Scratch& scratch);
  // Steps one env (its actions: discrete or continuous) into absolute output row `row`; returns the
  // block its result went to.
  size_t run_task(const Task& task, uint64_t row, const int64_t* discrete, const float* continuous);

  EnvConfig cfg_;
  std::vector<MarketData> markets_;  // never resized after construction: the envs point into it
  int num_envs_, batch_size_, num_threads_;
  bool sync_mode_;
  size_t chunk_;
  size_t num_blocks_;
  std::vector<std::unique_ptr<TradingEnv>> envs_;
  std::vector<int64_t> act_discrete_;  // [N, K] actions of a send_all
  std::vector<float> act_continuous_;  // [N, K, action_width]
  size_t width_;                       // action_width(cfg_)
  PoolBuffers buf_;

  // Task ring (bounded MPMC queue after D. Vyukov), one cell per chunk of up to chunk_ tasks: a
  // cell's sequence number says whether the producer may write it (seq == position) or a consumer
  // may read it (seq == position + 1). A cell is handed back only after its tasks were copied out,
  // so a slow worker's claimed tasks are never overwritten by later sends.
  static constexpr size_t kMaxChunk = 64;
  struct Cell {
    std::atomic<uint64_t> seq;
    uint32_t count;  // tasks in this cell
    Task tasks[kMaxChunk];
  };
  std::unique_ptr<Cell[]> cells_;
  std::vector<int64_t> cell_discrete_;  // [capacity_, kMaxChunk, K]: the actions of each cell's tasks
  std::vector<float> cell_continuous_;  // [capacity_, kMaxChunk, K, action_width]
  Scratch caller_scratch_;
  uint64_t capacity_ = 0;  // cells, a power of two >= 2 ceil(N / chunk_)
  uint64_t sent_tasks_ = 0;  // tasks queued by send since construction (caller only)
  // Own cache lines: the caller writes tail_, workers head_ and next_row_ (issue 18).
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<uint64_t> next_row_{0};  // async row counter
  uint64_t sync_rows_ = 0;                 // rows reserved by sync sends
  uint64_t read_row_ = 0;                  // first row of the next block recv returns
  std::unique_ptr<std::atomic<int64_t>[]> block_done_;
  std::vector<uint8_t> in_flight_;  // per env: sent, result not received yet (caller only)

  // send_all: (generation << 48) | (front << 24) | back: chunks [front, back) are unclaimed; the caller
  // claims at the front, workers at the back. A chunk's parameters are read only after claiming it,
  // and the next generation is published only after every chunk of this one is done.
  static constexpr int kClaimBits = 24;
  static constexpr uint64_t kClaimMask = (uint64_t{1} << kClaimBits) - 1;
  static uint64_t pack_claim(uint64_t gen, uint64_t front, uint64_t back) {
    return (gen << (2 * kClaimBits)) | (front << kClaimBits) | back;
  }
  static bool claim_open(uint64_t v) { return ((v >> kClaimBits) & kClaimMask) < (v & kClaimMask); }
  size_t run_sync_chunks(bool from_front);
  std::atomic<uint64_t> sync_claim_{0};  // nothing to claim before the first send_all
  std::atomic<int64_t> sync_done_{0};
  uint64_t sync_gen_ = 0;
  uint64_t sync_base_ = 0;  // absolute row of env 0
  bool sync_reset_ = false;
  bool sync_pending_ = false;
  int64_t sync_chunks_ = 0;

  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace trader
