#include "bench/loadgen/timeline.h"

namespace muserve::loadgen {
namespace {

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

RequestLatencies Measure(const RequestRecord& record) {
  RequestLatencies out;
  out.e2e_ms = Ms(record.end_ns - record.start_ns);
  for (size_t i = 0; i < record.chunks.size(); ++i) {
    const ChunkArrival& chunk = record.chunks[i];
    out.output_tokens += chunk.num_tokens;
    if (i == 0) {
      out.ttft_ms = Ms(chunk.time_ns - record.start_ns);
      continue;
    }
    const double gap_ms = Ms(chunk.time_ns - record.chunks[i - 1].time_ns) / chunk.num_tokens;
    out.itl_ms.insert(out.itl_ms.end(), chunk.num_tokens, gap_ms);
  }
  if (out.ttft_ms && out.output_tokens >= 2) {
    const int64_t decode_ns = record.chunks.back().time_ns - record.chunks.front().time_ns;
    out.tpot_ms = Ms(decode_ns) / static_cast<double>(out.output_tokens - 1);
  }
  return out;
}

}  // namespace muserve::loadgen
