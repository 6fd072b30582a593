#include "engine/cpu/matmul.h"

#include <algorithm>

namespace muserve::cpu {
namespace {

// Columns per unit of parallel work: a multiple of every tile width, so only
// the last unit has partial tiles.
constexpr int64_t kColumnsPerUnit = 16;
// From this many rows on, converting a weight panel to fp32 once is cheaper
// than converting it inside every row tile.
constexpr int64_t kPanelMinRows = 8;
// Panel size target: half of a core's L2 (2 MiB on Sapphire Rapids), leaving
// room for the x rows and K-blocked accumulators streaming past it.
constexpr int64_t kPanelBytes = 1024 * 1024;

// Columns of w converted (or, for f32 weights, multiplied) per panel.
int64_t PanelColumns(int64_t K) {
  return std::max<int64_t>(kColumnsPerUnit, kPanelBytes / (std::max<int64_t>(K, 1) * 4) /
                                                kColumnsPerUnit * kColumnsPerUnit);
}

}  // namespace

void MatMulScratch::Reserve(const WeightMatrix& w) {
  const int64_t K = w.cols;
  const int64_t panel_cols = PanelColumns(K);
  // Panels hold at most panel_cols rows of K floats (panel_cols * K <= about
  // kPanelBytes / 4, or 16 rows of a very long K).
  const size_t panel = w.dtype != DType::kF32 ? static_cast<size_t>(panel_cols * K) : 0;
  const size_t state =
      K > kKBlockThreshold ? static_cast<size_t>(MatMulStateFloats(panel_cols)) : 0;
  for (Worker& worker : workers_) {
    if (worker.panel.size() < panel) worker.panel.resize(panel);
    if (worker.state.size() < state) worker.state.resize(state);
  }
}

void MatMul(ThreadPool& pool, const KernelTable& kernels, MatMulScratch& scratch, const float* x,
            int64_t M, const WeightMatrix& w, float* y) {
  const int64_t N = w.rows;
  const int64_t K = w.cols;
  if (M <= 0 || N <= 0) return;
  const int64_t units = (N + kColumnsPerUnit - 1) / kColumnsPerUnit;
  const int64_t elem = static_cast<int64_t>(DTypeSize(w.dtype));
  scratch.Reserve(w);
  const int64_t panel_cols = PanelColumns(K);
  const bool convert = M >= kPanelMinRows && w.dtype != DType::kF32;
  const auto* base = static_cast<const std::byte*>(w.data);
  pool.ParallelFor(units, [&](int worker, int64_t u0, int64_t u1) {
    const int64_t n_begin = u0 * kColumnsPerUnit;
    const int64_t n_end = std::min(N, u1 * kColumnsPerUnit);
    if (M == 1) {  // one pass over the weights: no panels needed
      kernels.matmul(x, K, M, w.data, w.dtype, K, n_begin, n_end, y + n_begin, N, nullptr);
      return;
    }
    // Panel by panel, so that every row tile after the first finds the
    // panel's weights in cache instead of streaming them from memory again.
    float* panel = scratch.panel(worker);
    float* state = scratch.k_block_state(worker);  // non-null when K > kKBlockThreshold
    for (int64_t p0 = n_begin; p0 < n_end; p0 += panel_cols) {
      const int64_t p1 = std::min(n_end, p0 + panel_cols);
      if (convert) {
        kernels.convert_rows(w.data, w.dtype, K, p0, p1, panel);
        kernels.matmul(x, K, M, panel, DType::kF32, K, 0, p1 - p0, y + p0, N, state);
      } else {
        kernels.matmul(x, K, M, base + p0 * K * elem, w.dtype, K, 0, p1 - p0, y + p0, N, state);
      }
    }
  });
}

}  // namespace muserve::cpu
