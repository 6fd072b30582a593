// Machine limits the engine benchmark reports its figures against, measured
// in the same run on the same threads: streaming-read memory bandwidth (the
// decode limit) and fp32 FMA throughput (the prefill limit).
#pragma once

#include <cstdint>

namespace muserve::bench {

// Bytes per second that `num_threads` threads read from a buffer of
// `buffer_bytes` (much larger than the last-level cache); best of `passes`.
double MeasureReadBandwidth(int num_threads, int64_t buffer_bytes, int passes);

// fp32 FLOP/s (an FMA counts 2) of `num_threads` threads each running
// independent FMA chains on the widest vectors the CPU has; best of `passes`.
double MeasureFmaPeak(int num_threads, int passes);

// "avx512", "avx2" or "scalar": what MeasureFmaPeak used.
const char* FmaPeakIsa();

}  // namespace muserve::bench
