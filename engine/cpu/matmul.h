// Multithreaded y = x * W^T over a checkpoint weight matrix, the projection
// every layer is made of. Parallel over output columns (N); each element is
// one kernel dot product (kernel_table.h), so the result is independent of the
// thread count and of how many rows x has.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/api/dtype.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/thread_pool.h"

namespace muserve::cpu {

// A [rows, cols] row-major matrix of `dtype` elements (rows = output features).
struct WeightMatrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Per-worker scratch of MatMul: fp32 panels (with many rows, a panel of
// bf16/f16 weight rows is converted once and reused by every row tile instead
// of converting per tile) and the K-blocking accumulators of the kernels.
// Reserve() grows it on the calling thread, so that the workers never
// allocate; once reserved for every matrix, MatMul performs no allocation.
class MatMulScratch {
 public:
  explicit MatMulScratch(int num_workers) : workers_(num_workers) {}

  // Makes room for MatMul against `w` with any number of rows. Throws
  // std::bad_alloc if memory runs out.
  void Reserve(const WeightMatrix& w);

  float* panel(int worker) { return workers_[worker].panel.data(); }
  float* k_block_state(int worker) { return workers_[worker].state.data(); }

 private:
  struct Worker {
    std::vector<float> panel;
    std::vector<float> state;
  };
  std::vector<Worker> workers_;
};

// y[m * N + n] = dot(x[m * K ...], w row n) for m < M, n < N = w.rows; K = w.cols.
// Calls scratch.Reserve(w) first (a no-op once reserved).
void MatMul(ThreadPool& pool, const KernelTable& kernels, MatMulScratch& scratch, const float* x,
            int64_t M, const WeightMatrix& w, float* y);

}  // namespace muserve::cpu
