// A pool of N trading envs stepped by a fixed set of threads, envpool-style.
//
// Output: one contiguous buffer per field, R blocks of B rows (B = batch_size). `send` queues (env,
// action) tasks and reserves each its output row in send order; threads step envs and write each
// result into its row; `recv` waits for the next full block and returns its index. So the rows of a
// block are the results of B consecutive tasks in the order they were sent, whatever the thread count:
// in sync mode (batch_size == num_envs) `step` returns rows in env order; otherwise `env_id` says
// whose row it is. Threads: num_threads threads step envs. In sync mode and in async mode with
// num_threads >= 2 they count the caller, which steps envs too while it waits in recv (num_threads - 1
// background workers). In async mode with num_threads == 1 the one thread is a background worker and
// the caller never steps an env, as in envpool: stepping overlaps the caller's work between recv and
// send (issue 18).
// Each env owns its random state (seed + env_id), so results do not depend on the thread count.
// The pool holds one or more datasets (MarketData); each episode runs inside one (issue 13).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "env/trading_env.h"

namespace trader {

// Allocates on cache-line boundaries, so that the rows of a chunk (a multiple of 64 rows in the
// default schemes) start a line in every output buffer. Threads write the rows of their own chunks;
// from malloc's 16-byte alignment the line holding the last rows of one thread's chunk and the first
// rows of the next (another thread's) moved between their cores on every step of either, in each of
// the one- and four-byte buffers. On 2 cores, 1,024 envs, 2 threads: async 26 -> 30 M env-steps/s,
// sync 33 -> 36 M (issue 18, session 20).
template <typename T>
struct LineAligned {
  using value_type = T;
  static constexpr std::align_val_t kLine{64};
  LineAligned() = default;
  template <typename U>
  LineAligned(const LineAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kLine)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kLine); }
  template <typename U>
  bool operator==(const LineAligned<U>&) const { return true; }
  template <typename U>
  bool operator!=(const LineAligned<U>&) const { return false; }
};
template <typename T>
using LineVector = std::vector<T, LineAligned<T>>;

struct PoolBuffers {
  size_t rows = 0;  // R * B
  int agents = 1;
  int64_t obs_dim = 0;
  LineVector<float> obs;  // [rows, K, obs_dim]
#define TRADER_OUT_VEC(name, type, per_agent, doc) LineVector<type> name;  // [rows] or [rows, K]
  TRADER_ENV_OUTPUTS(TRADER_OUT_VEC)
#undef TRADER_OUT_VEC

  OutBase base;  // first elements of the buffers above
  // [rows] terminated | truncated, written by the thread that steps the row (gymnasium's
  // info["_episode"] mask): the caller reads neither field's line in recv (issue 18).
  LineVector<uint8_t> done;

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
  // recv would return at once: the next block is full (async mode).
  bool ready() const;
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
  struct Queue;
  // Runs chunk c of queue q, claimed by the caller or a worker; returns how many tasks it ran.
  size_t run_chunk(Queue& q, uint64_t c, bool by_caller);
  // Claims the oldest open chunk of q; 0: none open.
  size_t run_front(Queue& q, bool by_caller);
  // The caller takes the newest open chunk of the workers' queue; 0: none open.
  size_t steal_back();
  void worker_loop();
  // The block recv returns next (async mode).
  size_t next_block() const {
    return static_cast<size_t>((read_row_ / static_cast<uint64_t>(batch_size_)) % num_blocks_);
  }
  void wake_sleepers();

  EnvConfig cfg_;
  std::vector<MarketData> markets_;  // never resized after construction: the envs point into it
  int num_envs_, batch_size_, num_threads_;
  bool sync_mode_;
  bool caller_steps_;  // false: async with num_threads == 1, one worker steps every env
  size_t chunk_;
  size_t num_blocks_;
  std::vector<std::unique_ptr<TradingEnv>> envs_;
  std::vector<int64_t> act_discrete_;  // [N, K] actions of a send_all
  std::vector<float> act_continuous_;  // [N, K, action_width]
  size_t width_;                       // action_width(cfg_)
  PoolBuffers buf_;

  // Task queues of send (issue 18). Tasks keep their send order: task i of all sends since construction
  // lives in slot i & ring_mask_ and its output row is reserved at its send, so a block holds the
  // results of batch_size consecutive tasks and recv's rows come in send order whatever the thread
  // count. Tasks go out in chunks of up to chunk_ consecutive tasks of one send, each chunk to the
  // queue of the home of its first env: the thread group that stepped that env last, the caller or
  // the workers. Each group runs its own queue oldest first; only when its queue is empty does it take
  // the other's chunks (workers the caller's oldest, the caller the workers' newest), which moves
  // their envs' home. An env thus stays on one side from step to step and its state and output rows
  // stay in that core's cache, as with send_all's two-ended claims: a single FIFO claimed by any
  // thread moved them between cores on most steps, and a two-ended claim without homes moved a chunk
  // or two per batch whenever the split point jittered (10-40 % of steps); either ran async at about
  // half the sync rate on 2 cores. A slot is reused only after its result was received: at most
  // num_envs tasks are in flight and results are received in send order, so a capacity above
  // num_envs suffices (chunks too: each holds at least one task in flight). When the caller does not
  // step (async, num_threads == 1) every env is homed on the workers and the caller's queue stays empty.
  struct alignas(64) Chunk {  // a line each: the caller writes one while a worker claims the one before
    // (chunk number << 2) | state (kOpen, kByWorker, kByCaller). The number makes a stale claim fail:
    // a worker that read the front long ago cannot take the slot's later chunk by mistake.
    std::atomic<uint64_t> claim;
    uint64_t first_task;  // task number of its first task
    uint64_t first_row;   // absolute output row of its first task
    uint32_t count;
    uint8_t reset;
  };
  static constexpr uint64_t kOpen = 0, kByWorker = 1, kByCaller = 2;
  struct Queue {  // chunks in send order; published by the caller, claimed at the front (and the back)
    std::unique_ptr<Chunk[]> chunks;                 // [ring_mask_ + 1]
    alignas(64) std::atomic<uint64_t> published{0};  // chunks queued (the caller writes it)
    alignas(64) std::atomic<uint64_t> front{0};      // chunks taken at the front
    bool open() const { return front.load(std::memory_order_acquire) < published.load(std::memory_order_acquire); }
  };
  static constexpr uint8_t kCallerHome = 0, kWorkerHome = 1;
  Queue queues_[2];                     // [kCallerHome], [kWorkerHome]
  std::vector<uint8_t> home_;           // per env: kCallerHome or kWorkerHome
  // Capacity - 1 of the task slots and of each queue's chunks: one power of two > num_envs for both.
  uint64_t ring_mask_ = 0;
  std::vector<int32_t> task_env_;       // [ring_mask_ + 1]
  std::vector<int64_t> task_discrete_;  // [ring_mask_ + 1, K]
  std::vector<float> task_continuous_;  // [ring_mask_ + 1, K, action_width]
  // Results written per block, a line each: on one line, a thread's add for its block took the line
  // from the core that had just added for another block or was polling its own.
  struct alignas(64) BlockDone {
    std::atomic<int64_t> n{0};
  };
  std::unique_ptr<BlockDone[]> block_done_;

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
  int64_t sync_chunks_ = 0;
  // Lines apart: everything above is fixed after construction and read by every thread; a counter the
  // caller bumps on the same line as a field the workers read moved that line between cores once per
  // task (issue 18: the async pool ran at half speed whenever the two vCPUs were far apart).
  alignas(64) std::atomic<uint64_t> sync_claim_{0};  // nothing to claim before the first send_all
  alignas(64) std::atomic<int64_t> sync_done_{0};
  alignas(64) uint64_t sync_base_ = 0;  // absolute row of env 0 (written once per send_all)
  bool sync_reset_ = false;
  // The caller's own state.
  alignas(64) uint64_t tasks_sent_ = 0;  // tasks queued since construction
  uint64_t caller_back_ = 0;             // the workers' chunks below this one are left for the caller to try
  uint64_t sent_ = 0;                    // output rows reserved by send and send_all
  uint64_t read_row_ = 0;                // first row of the next block recv returns
  uint64_t sync_gen_ = 0;
  bool sync_pending_ = false;
  std::vector<uint8_t> in_flight_;  // per env: sent, result not received yet

  alignas(64) std::atomic<bool> stop_{false};  // read by the workers on every pass of their loop
  // Its own line: send's read-modify-write (wake_sleepers) on the line of stop_ moved that line to
  // the caller's core and back to the workers' on every send (issue 18).
  alignas(64) std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
};

}  // namespace trader
