#include "engine/model/shard.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/api/dtype.h"

namespace muserve {
namespace {

absl::Status NotDivisible(const char* field, int64_t value, int32_t size) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", value, " is not divisible by tensor_parallel_size ", size));
}

// Rows [begin, begin + count) of a [rows, cols] (or 1-D) tensor: a view.
TensorView RowSlice(const TensorView& t, int64_t begin, int64_t count) {
  const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
  const size_t row_bytes = static_cast<size_t>(cols) * DTypeSize(t.dtype);
  TensorView out = t;
  out.data = t.data + static_cast<size_t>(begin) * row_bytes;
  out.shape[0] = count;
  out.element_count = count * cols;
  out.num_bytes = static_cast<size_t>(count) * row_bytes;
  return out;
}

// Columns [begin, begin + count) of a [rows, cols] tensor, copied row by row
// into a new block of `storage`.
TensorView ColumnSlice(const TensorView& t, int64_t begin, int64_t count,
                       std::vector<std::vector<std::byte>>& storage) {
  const int64_t rows = t.shape[0];
  const size_t elem = DTypeSize(t.dtype);
  const size_t src_row = static_cast<size_t>(t.shape[1]) * elem;
  const size_t dst_row = static_cast<size_t>(count) * elem;
  std::vector<std::byte>& block = storage.emplace_back(static_cast<size_t>(rows) * dst_row);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(block.data() + r * dst_row, t.data + r * src_row + begin * elem, dst_row);
  TensorView out = t;
  out.data = block.data();
  out.shape = {rows, count};
  out.element_count = rows * count;
  out.num_bytes = block.size();
  return out;
}

}  // namespace

ModelConfig ShardLayout::LocalConfig(const ModelConfig& full) const {
  ModelConfig local = full;
  local.num_attention_heads = num_heads;
  local.num_key_value_heads = num_kv_heads;
  local.intermediate_size = intermediate_size;
  local.vocab_size = vocab_size;
  return local;
}

absl::Status ValidateTensorParallelSize(const ModelConfig& config, int32_t size) {
  if (size < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("tensor_parallel_size must be >= 1, got ", size));
  if (config.num_attention_heads % size != 0)
    return NotDivisible("num_attention_heads", config.num_attention_heads, size);
  const int64_t kv = config.num_key_value_heads;
  if (kv % size != 0 && size % kv != 0)
    return absl::InvalidArgumentError(absl::StrCat("num_key_value_heads ", kv,
                                                   " is neither divisible by tensor_parallel_size ",
                                                   size, " nor a divisor of it (for replication)"));
  if (config.intermediate_size % size != 0)
    return NotDivisible("intermediate_size", config.intermediate_size, size);
  if (config.vocab_size % size != 0) return NotDivisible("vocab_size", config.vocab_size, size);
  return absl::OkStatus();
}

absl::StatusOr<ShardLayout> MakeShardLayout(const ModelConfig& config, int32_t rank, int32_t size) {
  if (absl::Status s = ValidateTensorParallelSize(config, size); !s.ok()) return s;
  if (rank < 0 || rank >= size)
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside tensor_parallel_size ", size));
  ShardLayout l;
  l.rank = rank;
  l.size = size;
  l.num_heads = config.num_attention_heads / size;
  l.head_begin = rank * l.num_heads;
  const int64_t kv = config.num_key_value_heads;
  if (kv >= size) {
    l.num_kv_heads = kv / size;
    l.kv_head_begin = rank * l.num_kv_heads;
  } else {
    // size / kv consecutive ranks share one KV head; their query heads
    // [rank * heads / size, ...) lie inside that head's group of heads / kv.
    l.num_kv_heads = 1;
    l.kv_head_begin = rank / (size / kv);
  }
  l.intermediate_size = config.intermediate_size / size;
  l.intermediate_begin = rank * l.intermediate_size;
  l.vocab_size = config.vocab_size / size;
  l.vocab_begin = rank * l.vocab_size;
  return l;
}

absl::StatusOr<ShardWeights> ShardModelWeights(const ModelConfig& config, const ModelWeights& full,
                                               const ShardLayout& layout) {
  if (absl::Status s = ValidateTensorParallelSize(config, layout.size); !s.ok()) return s;
  if (full.layers.size() != static_cast<size_t>(config.num_hidden_layers))
    return absl::InvalidArgumentError(absl::StrCat(
        "model has ", full.layers.size(), " bound layers, config says ", config.num_hidden_layers));
  const int64_t d = config.head_dim;
  const int64_t q0 = layout.head_begin * d, qn = layout.num_heads * d;
  const int64_t kv0 = layout.kv_head_begin * d, kvn = layout.num_kv_heads * d;
  const int64_t i0 = layout.intermediate_begin, in = layout.intermediate_size;
  ShardWeights shard;
  ModelWeights& w = shard.weights;
  w.embed_tokens = RowSlice(full.embed_tokens, layout.vocab_begin, layout.vocab_size);
  w.lm_head = RowSlice(full.lm_head, layout.vocab_begin, layout.vocab_size);
  w.norm = full.norm;
  for (const LayerWeights& f : full.layers) {
    LayerWeights l;
    l.input_layernorm = f.input_layernorm;
    l.post_attention_layernorm = f.post_attention_layernorm;
    l.q_proj = RowSlice(f.q_proj, q0, qn);
    l.k_proj = RowSlice(f.k_proj, kv0, kvn);
    l.v_proj = RowSlice(f.v_proj, kv0, kvn);
    if (f.q_bias) l.q_bias = RowSlice(*f.q_bias, q0, qn);
    if (f.k_bias) l.k_bias = RowSlice(*f.k_bias, kv0, kvn);
    if (f.v_bias) l.v_bias = RowSlice(*f.v_bias, kv0, kvn);
    l.o_proj = ColumnSlice(f.o_proj, q0, qn, shard.storage);
    l.gate_proj = RowSlice(f.gate_proj, i0, in);
    l.up_proj = RowSlice(f.up_proj, i0, in);
    l.down_proj = ColumnSlice(f.down_proj, i0, in, shard.storage);
    w.layers.push_back(std::move(l));
  }
  return shard;
}

}  // namespace muserve
