#include "engine/cpu/thread_pool.h"

namespace muserve::cpu {

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
  threads_.reserve(num_threads_ - 1);
  try {
    for (int w = 1; w < num_threads_; ++w) threads_.emplace_back([this, w] { WorkerLoop(w); });
  } catch (...) {
    // Stop and join the workers already started before reporting the failure.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_ready_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::RunRange(const Job& job, int worker) {
  const int64_t begin = job.size * worker / num_threads_;
  const int64_t end = job.size * (worker + 1) / num_threads_;
  if (begin >= end) return;
  try {
    job.invoke(job.fn, worker, begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::Run(int64_t n, void* fn, Invoke invoke) {
  if (n <= 0) return;
  if (num_threads_ == 1 || n == 1) {
    invoke(fn, 0, 0, n);  // no other thread involved: exceptions propagate as they are
    return;
  }
  const Job job{fn, invoke, n};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = job;
    pending_ = num_threads_ - 1;
    error_ = nullptr;
    ++generation_;
  }
  work_ready_.notify_all();
  RunRange(job, 0);
  // fn lives in the caller's frame: wait for every worker even after a
  // failure, so that none is left running a dangling job.
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    work_done_.wait(lock, [this] { return pending_ == 0; });
    job_ = Job{};
    error = std::move(error_);
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::WorkerLoop(int worker) {
  uint64_t seen = 0;
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    RunRange(job, worker);
    bool last;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last = --pending_ == 0;
    }
    if (last) work_done_.notify_one();
  }
}

}  // namespace muserve::cpu
