// ThreadPool: a fixed set of persistent worker threads that run one parallel
// loop at a time (no OpenMP). The calling thread takes part as worker 0.
//
// Work is split statically: ParallelFor(n, ...) gives worker w the contiguous
// range [n * w / P, n * (w + 1) / P). Kernels make every output element's
// arithmetic independent of the split, so results do not depend on the thread
// count; the static split only decides who computes what.
//
// ParallelFor does not allocate: the callable is passed by reference as an
// object pointer plus a plain function pointer (no std::function).
//
// Thread safety: one ParallelFor at a time (the CpuBackend calls it from the
// single thread that runs Forward); it blocks until every range is done.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace muserve::cpu {

class ThreadPool {
 public:
  // Starts num_threads - 1 workers (num_threads >= 1). Throws std::system_error
  // if a thread cannot be started (CpuBackend::Create maps it to a Status).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(worker, begin, end) once per worker with a non-empty range of
  // [0, n); worker is in [0, num_threads()). Returns when all calls returned.
  // If calls throw, ParallelFor still waits for every call to finish, then
  // rethrows the first exception (the others are dropped).
  template <class Fn>
  void ParallelFor(int64_t n, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    Run(n, const_cast<void*>(static_cast<const void*>(std::addressof(fn))),
        [](void* f, int worker, int64_t begin, int64_t end) {
          (*static_cast<F*>(f))(worker, begin, end);
        });
  }

 private:
  using Invoke = void (*)(void* fn, int worker, int64_t begin, int64_t end);
  struct Job {
    void* fn = nullptr;
    Invoke invoke = nullptr;
    int64_t size = 0;
  };

  void Run(int64_t n, void* fn, Invoke invoke);
  void WorkerLoop(int worker);
  // Runs worker's range of `job`; an exception is recorded in error_.
  void RunRange(const Job& job, int worker);

  const int num_threads_;
  std::vector<std::thread> threads_;

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // The current job; written by the caller before bumping generation_ and
  // left unchanged until pending_ is back to zero.
  Job job_ ABSL_GUARDED_BY(mutex_);
  uint64_t generation_ ABSL_GUARDED_BY(mutex_) = 0;
  int pending_ ABSL_GUARDED_BY(mutex_) = 0;  // workers 1.. still running the job
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  std::exception_ptr error_ ABSL_GUARDED_BY(mutex_);  // first exception of the job
};

}  // namespace muserve::cpu
