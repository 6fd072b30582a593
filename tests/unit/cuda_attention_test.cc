// Paged attention on the GPU (label `gpu`) against cpu::PagedAttention, the
// reference, on random mixed batches: prefill chunks and decodes, block
// tables with holes and shuffled blocks, GQA ratios 1, 4 and 8, head dims 64
// and 128, block sizes 1, 7 and 16, sliding windows, contexts from 1 to 32k,
// with and without the split-KV path. Every cache slot no sequence owns holds
// NaN, so a kernel reading a wrong block or position shows as NaN.
//
// Tolerance: both sides read the same dtype-rounded q, K and V; the GPU's
// fp32 result differs by summation order (about 1e-6 relative for short
// contexts, at most ~1e-4 absolute at 32k keys with |v| <= 1) and is then
// rounded once to the dtype (2^-8 relative for bf16): |gpu - cpu| <=
// 2 u |cpu| + 5e-4 with u the dtype's unit roundoff. A wrong mask, scale,
// head mapping or merge moves outputs by far more than that (one key more or
// less in a 100-key softmax with peaked scores moves them by ~1e-2).
// Skipped where no CUDA device is visible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/kernels/kv_cache_layout.h"
#include "cuda/kernels/paged_attention.h"
#include "engine/api/step_batch.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/kernel_table.h"
#include "engine/cpu/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/testing/cuda_test_util.h"

namespace muserve::cuda {
namespace {

using ::muserve::testing::DeviceArray;
using ::muserve::testing::FromHalfBits;
using ::muserve::testing::Sync;
using ::muserve::testing::ToHalfBits;
using ::muserve::testing::UnitRoundoff;

struct Seq {
  int32_t query_len;
  int32_t context_len;
};

struct Case {
  DType dtype = DType::kBF16;
  int32_t head_dim = 128;
  int32_t group = 4;
  int32_t kv_heads = 2;
  int32_t block_size = 16;
  int32_t sliding_window = 0;
  std::vector<Seq> seqs;
};

// Plan parameters: num_sms = 1 never splits a batch of two or more blocks;
// many SMs and a small min_chunk split every context of 64 keys or more.
struct PlanKnobs {
  int32_t num_sms = 1;
  int32_t min_chunk = 256;
};

class PagedAttentionRunner {
 public:
  explicit PagedAttentionRunner(const Case& c, uint32_t seed) : c_(c), rng_(seed) { Build(); }

  struct GpuRun {
    std::vector<uint16_t> out;  // [tokens of the run's sequences, heads * head_dim]
    int32_t num_splits = 0;
  };

  // Runs the GPU kernel under `knobs` over the sequences `seq_ids` (in that
  // order) of the case, on the same caches and queries.
  GpuRun RunGpu(const PlanKnobs& knobs, const std::vector<size_t>& seq_ids) {
    const AttentionDims dims = Dims();
    const int64_t q_size = int64_t{dims.num_heads} * c_.head_dim;
    std::vector<int32_t> query_lens, context_lens, query_start = {0}, tables;
    std::vector<uint16_t> q;
    for (size_t id : seq_ids) {
      const StepSequence& seq = batch_.sequences[id];
      query_lens.push_back(seq.query_len);
      context_lens.push_back(seq.context_len);
      query_start.push_back(query_start.back() + seq.query_len);
      tables.insert(tables.end(), block_tables_.begin() + id * max_blocks_,
                    block_tables_.begin() + (id + 1) * max_blocks_);
      q.insert(q.end(), q_bits_.begin() + seq.query_start * q_size,
               q_bits_.begin() + (seq.query_start + seq.query_len) * q_size);
    }
    const int64_t num_tokens = query_start.back();
    absl::StatusOr<AttentionPlan> plan =
        PlanPagedAttention(query_lens, context_lens, dims, knobs.num_sms, 32, knobs.min_chunk);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return {};

    DeviceArray<uint16_t> d_q(q), d_k(k_gpu_), d_v(v_gpu_), d_out(q.size());
    DeviceArray<int32_t> d_query_start(query_start), d_context(context_lens), d_tables(tables);
    DeviceArray<int32_t> d_tile_seq(plan->tile_sequence), d_tile_begin(plan->tile_query_begin);
    DeviceArray<char> d_workspace(static_cast<size_t>(plan->WorkspaceBytes(num_tokens, dims)));
    PagedAttentionArgs args;
    args.dtype = c_.dtype;
    args.dims = dims;
    args.q = d_q.get();
    args.k_cache = d_k.get();
    args.v_cache = d_v.get();
    args.out = d_out.get();
    args.num_tokens = num_tokens;
    args.query_start = d_query_start.get();
    args.context_lens = d_context.get();
    args.block_tables = d_tables.get();
    args.max_blocks_per_sequence = max_blocks_;
    args.tile_sequence = d_tile_seq.get();
    args.tile_query_begin = d_tile_begin.get();
    args.workspace = d_workspace.get();
    const absl::Status launched = LaunchPagedAttention(args, *plan, nullptr);
    EXPECT_TRUE(launched.ok()) << launched;
    EXPECT_EQ(Sync(), cudaSuccess);
    return {d_out.ToHost(), plan->num_splits};
  }

  // Runs the whole batch under `knobs` and compares with the CPU reference;
  // returns the plan's number of splits.
  int32_t RunAndCompare(const PlanKnobs& knobs) {
    std::vector<size_t> all(batch_.sequences.size());
    std::iota(all.begin(), all.end(), size_t{0});
    const GpuRun run = RunGpu(knobs, all);
    EXPECT_EQ(run.out.size(), want_.size());
    if (run.out.size() != want_.size()) return run.num_splits;
    const float rel = 2 * UnitRoundoff(c_.dtype);
    const int32_t heads = Dims().num_heads;
    int misses = 0;
    for (size_t i = 0; i < run.out.size(); ++i) {
      const float g = FromHalfBits(c_.dtype, run.out[i]);
      const float w = want_[i];
      if (std::fabs(g - w) <= rel * std::fabs(w) + 5e-4f) continue;  // false for NaN
      const int64_t row = static_cast<int64_t>(i) / c_.head_dim;
      if (++misses <= 5)
        ADD_FAILURE() << "token " << row / heads << " head " << row % heads << " dim "
                      << i % c_.head_dim << ": got " << g << ", want " << w << " (splits "
                      << run.num_splits << ")";
    }
    EXPECT_EQ(misses, 0) << misses << " of " << run.out.size() << " outputs differ";
    return run.num_splits;
  }

  // Without splits a row's arithmetic depends only on its own sequence:
  // expects each sequence run alone, and the batch in reverse order, to give
  // the batch's bits exactly.
  void ExpectBatchedEqualsAlone() {
    const size_t n = batch_.sequences.size();
    std::vector<size_t> all(n);
    std::iota(all.begin(), all.end(), size_t{0});
    const GpuRun batched = RunGpu({}, all);
    ASSERT_EQ(batched.num_splits, 1);
    const int64_t q_size = int64_t{Dims().num_heads} * c_.head_dim;
    // The outputs of `tokens` tokens from `first_token`; empty if out is short
    // (a failed run, already reported).
    auto rows_of = [&](const std::vector<uint16_t>& out, int64_t first_token, int32_t tokens) {
      if (static_cast<int64_t>(out.size()) < (first_token + tokens) * q_size)
        return std::vector<uint16_t>();
      return std::vector<uint16_t>(out.begin() + first_token * q_size,
                                   out.begin() + (first_token + tokens) * q_size);
    };
    const std::vector<size_t> reversed(all.rbegin(), all.rend());
    const GpuRun reordered = RunGpu({}, reversed);
    int64_t reordered_token = 0;
    for (size_t id : reversed) {
      const StepSequence& seq = batch_.sequences[id];
      const std::vector<uint16_t> want = rows_of(batched.out, seq.query_start, seq.query_len);
      EXPECT_EQ(rows_of(RunGpu({}, {id}).out, 0, seq.query_len), want) << "sequence " << id;
      EXPECT_EQ(rows_of(reordered.out, reordered_token, seq.query_len), want)
          << "sequence " << id << " in reverse order";
      reordered_token += seq.query_len;
    }
  }

 private:
  AttentionDims Dims() const {
    return {c_.group * c_.kv_heads, c_.kv_heads, c_.head_dim, c_.block_size, c_.sliding_window};
  }

  void Build() {
    const int32_t bs = c_.block_size;
    const int64_t width = static_cast<int64_t>(c_.kv_heads) * c_.head_dim;
    // Physical blocks: twice what the sequences need, shuffled, so each
    // table is out of order and skips blocks other sequences do not own.
    int32_t needed = 0;
    for (const Seq& s : c_.seqs) {
      needed += (s.context_len + bs - 1) / bs;
      max_blocks_ = std::max(max_blocks_, (s.context_len + bs - 1) / bs);
    }
    const int32_t num_blocks = 2 * needed + 3;
    std::vector<int32_t> perm(num_blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng_);

    const KvCacheLayout layout{c_.kv_heads, bs, c_.head_dim};
    const int64_t slots = static_cast<int64_t>(num_blocks) * bs;
    k_cpu_.assign(slots * width, NAN);
    v_cpu_.assign(slots * width, NAN);
    const uint16_t nan_bits = ToHalfBits(c_.dtype, NAN);
    k_gpu_.assign(slots * width, nan_bits);
    v_gpu_.assign(slots * width, nan_bits);
    block_tables_.assign(c_.seqs.size() * max_blocks_, -1);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    int32_t next_block = 0;
    for (size_t s = 0; s < c_.seqs.size(); ++s) {
      const Seq& seq = c_.seqs[s];
      StepSequence step;
      step.query_start = batch_.num_tokens();
      step.query_len = seq.query_len;
      step.context_len = seq.context_len;
      step.sample = true;
      for (int32_t b = 0; b < (seq.context_len + bs - 1) / bs; ++b) {
        step.block_table.push_back(perm[next_block++]);
        block_tables_[s * max_blocks_ + b] = step.block_table.back();
      }
      for (int32_t p = 0; p < seq.context_len; ++p) {
        const int64_t slot = static_cast<int64_t>(step.block_table[p / bs]) * bs + p % bs;
        for (int32_t h = 0; h < c_.kv_heads; ++h)
          for (int32_t d = 0; d < c_.head_dim; ++d) {
            const uint16_t k = ToHalfBits(c_.dtype, unit(rng_));
            const uint16_t v = ToHalfBits(c_.dtype, unit(rng_));
            k_cpu_[slot * width + h * c_.head_dim + d] = FromHalfBits(c_.dtype, k);
            v_cpu_[slot * width + h * c_.head_dim + d] = FromHalfBits(c_.dtype, v);
            k_gpu_[layout.Index(slot, h, d)] = k;
            v_gpu_[layout.Index(slot, h, d)] = v;
          }
      }
      for (int32_t i = 0; i < seq.query_len; ++i) {
        const int32_t p = seq.context_len - seq.query_len + i;
        batch_.tokens.push_back(0);
        batch_.positions.push_back(p);
        batch_.slot_mapping.push_back(static_cast<int64_t>(step.block_table[p / bs]) * bs + p % bs);
        token_sequence_.push_back(static_cast<int32_t>(s));
      }
      batch_.sequences.push_back(std::move(step));
    }
    // Queries in [-3, 3]: scores spread enough that the softmax is peaked.
    const int64_t q_size = static_cast<int64_t>(c_.group) * c_.kv_heads * c_.head_dim;
    std::uniform_real_distribution<float> wide(-3.0f, 3.0f);
    q_bits_.resize(batch_.num_tokens() * q_size);
    std::vector<float> q(q_bits_.size());
    for (size_t i = 0; i < q.size(); ++i) {
      q_bits_[i] = ToHalfBits(c_.dtype, wide(rng_));
      q[i] = FromHalfBits(c_.dtype, q_bits_[i]);
    }

    const cpu::AttentionShape shape{
        c_.group * c_.kv_heads, c_.kv_heads, c_.head_dim, bs,
        c_.sliding_window > 0 ? std::optional<int64_t>(c_.sliding_window) : std::nullopt};
    constexpr int kThreads = 4;
    cpu::ThreadPool pool(kThreads);
    std::vector<std::vector<float>> scores(kThreads);
    want_.resize(q.size());
    cpu::PagedAttention(pool, cpu::KernelsFor(cpu::BestIsa()), batch_, token_sequence_, shape,
                        q.data(), k_cpu_.data(), v_cpu_.data(), scores, want_.data());
  }

  Case c_;
  std::mt19937 rng_;
  StepBatch batch_;
  std::vector<int32_t> token_sequence_;
  int32_t max_blocks_ = 1;
  std::vector<int32_t> block_tables_;    // [sequences, max_blocks_], -1 past each table
  std::vector<float> k_cpu_, v_cpu_;     // [slots, kv_heads * head_dim]
  std::vector<uint16_t> k_gpu_, v_gpu_;  // kv_cache_layout.h
  std::vector<uint16_t> q_bits_;
  std::vector<float> want_;  // [T, heads * head_dim] the CPU's output
};

// Random sequences: `decodes` of one new token over 1..max_context keys, and
// `prefills` chunks of 1..40 new tokens after 0..100 earlier ones.
std::vector<Seq> RandomSeqs(std::mt19937& rng, int decodes, int prefills, int32_t max_context) {
  std::vector<Seq> seqs;
  std::uniform_int_distribution<int32_t> context(1, max_context), chunk(1, 40), prior(0, 100);
  for (int i = 0; i < decodes; ++i) seqs.push_back({1, context(rng)});
  for (int i = 0; i < prefills; ++i) {
    const int32_t q = chunk(rng);
    seqs.push_back({q, q + prior(rng)});
  }
  std::shuffle(seqs.begin(), seqs.end(), rng);
  return seqs;
}

using Shape = std::tuple<DType, int32_t /*head_dim*/, int32_t /*group*/>;

class CudaPagedAttentionTest : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override { MUSERVE_SKIP_WITHOUT_CUDA_DEVICE(); }
  Case BaseCase() const {
    Case c;
    c.dtype = std::get<0>(GetParam());
    c.head_dim = std::get<1>(GetParam());
    c.group = std::get<2>(GetParam());
    return c;
  }
  std::mt19937 rng_{7};
};

TEST_P(CudaPagedAttentionTest, DecodeBatchMatchesCpu) {
  Case c = BaseCase();
  c.seqs = RandomSeqs(rng_, 17, 0, 300);
  c.seqs.push_back({1, 1});  // a sequence's very first token
  PagedAttentionRunner(c, 1).RunAndCompare({});
}

TEST_P(CudaPagedAttentionTest, MixedPrefillChunksAndDecodesMatchCpu) {
  Case c = BaseCase();
  c.seqs = RandomSeqs(rng_, 6, 5, 200);
  c.seqs.push_back({37, 37});  // a first chunk: causal over itself only
  c.seqs.push_back({1, 1});
  PagedAttentionRunner(c, 2).RunAndCompare({});
}

TEST_P(CudaPagedAttentionTest, SplitKvMatchesCpuWhereSplitsCutThroughChunks) {
  Case c = BaseCase();
  c.seqs = RandomSeqs(rng_, 4, 4, 400);
  c.seqs.push_back({40, 140});
  const int32_t splits = PagedAttentionRunner(c, 3).RunAndCompare({10000, 32});
  EXPECT_GT(splits, 1);
}

TEST_P(CudaPagedAttentionTest, EachSequenceGetsTheSameBitsAloneAsInAnyBatch) {
  Case c = BaseCase();
  c.seqs = RandomSeqs(rng_, 5, 4, 150);
  PagedAttentionRunner(c, 4).ExpectBatchedEqualsAlone();
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaPagedAttentionTest,
    ::testing::Combine(::testing::Values(DType::kBF16, DType::kF16),
                       ::testing::Values(16, 24, 32, 64, 128), ::testing::Values(1, 4, 8)),
    [](const ::testing::TestParamInfo<Shape>& param_info) {
      return std::string(std::get<0>(param_info.param) == DType::kBF16 ? "BF16" : "F16") + "_D" +
             std::to_string(std::get<1>(param_info.param)) + "_G" +
             std::to_string(std::get<2>(param_info.param));
    });

class CudaPagedAttentionEdgeTest : public ::testing::Test {
 protected:
  void SetUp() override { MUSERVE_SKIP_WITHOUT_CUDA_DEVICE(); }
  std::mt19937 rng_{11};
};

TEST_F(CudaPagedAttentionEdgeTest, BlockSizesOneAndSevenMatchCpu) {
  for (int32_t block_size : {1, 7}) {
    SCOPED_TRACE(::testing::Message() << "block_size " << block_size);
    Case c;
    c.block_size = block_size;
    c.seqs = RandomSeqs(rng_, 5, 4, 120);
    PagedAttentionRunner(c, 20 + block_size).RunAndCompare({});
    PagedAttentionRunner(c, 20 + block_size).RunAndCompare({10000, 32});
  }
}

TEST_F(CudaPagedAttentionEdgeTest, SlidingWindowMatchesCpu) {
  for (int32_t window : {1, 13, 100}) {
    SCOPED_TRACE(::testing::Message() << "sliding_window " << window);
    Case c;
    c.group = 8;
    c.kv_heads = 1;
    c.sliding_window = window;
    c.seqs = RandomSeqs(rng_, 5, 5, 300);
    PagedAttentionRunner(c, 30 + window).RunAndCompare({});
    PagedAttentionRunner(c, 30 + window).RunAndCompare({10000, 32});
  }
}

// Contexts up to 32k: decodes and a chunk at the end of a long context, with
// one split and with the split-KV path a long decode takes on a large GPU.
TEST_F(CudaPagedAttentionEdgeTest, LongContextsUpTo32kMatchCpu) {
  for (int32_t head_dim : {64, 128}) {
    SCOPED_TRACE(::testing::Message() << "head_dim " << head_dim);
    Case c;
    c.head_dim = head_dim;
    c.group = head_dim == 128 ? 8 : 1;
    c.kv_heads = 1;
    c.seqs = {{1, 32768}, {1, 20001}, {20, 8000}, {1, 1}};
    PagedAttentionRunner runner(c, 40 + head_dim);
    EXPECT_EQ(runner.RunAndCompare({1, 256}), 1);
    EXPECT_GT(runner.RunAndCompare({132, 256}), 1);
  }
}

}  // namespace
}  // namespace muserve::cuda
