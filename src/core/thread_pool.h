// A small fixed thread pool with a blocking parallel_for, for the CPU ops that OpenBLAS does not
// cover (attention, bf16 GEMV, norms over many rows).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vila {

class ThreadPool {
 public:
  // n_threads <= 0: hardware concurrency.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) over disjoint chunks covering [0, n); the caller's thread works too.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

  // Process-wide pool sized to the machine, or to $VILA_NUM_THREADS when set.
  static ThreadPool& global();

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace vila
