// tokenizer_bench: encode throughput (MB/s) of the tokenizer families the
// tests cover, on about a megabyte of their fixture strings. Encoding is on
// the request path (every prompt, every chat turn), so a regression here is
// time to first token.
//
// Usage: tokenizer_bench [Google Benchmark flags, e.g. --benchmark_filter=llama3]
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "engine/api/file_util.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace muserve::bench {
namespace {

const std::string kFixtures = std::string(MUSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizer/";

// About 1 MiB of the family's fixture strings, space separated.
std::string MegabyteOfText(const std::string& family) {
  const auto expected = ReadFileToString(kFixtures + family + "/expected.json");
  if (!expected.ok()) return {};
  const nlohmann::json cases = nlohmann::json::parse(*expected)["cases"];
  std::string text;
  for (size_t i = 0; text.size() < (1u << 20); ++i) {
    text += cases[i % cases.size()]["text"].get<std::string>();
    text += ' ';
  }
  return text;
}

void BM_Encode(benchmark::State& state, const std::string& family) {
  auto tokenizer = Tokenizer::FromFile(kFixtures + family + "/tokenizer.json");
  const std::string text = MegabyteOfText(family);
  if (!tokenizer.ok() || text.empty()) {
    state.SkipWithError("cannot load the tokenizer fixtures");
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = (*tokenizer)->Encode(text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK_CAPTURE(BM_Encode, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, mistral, std::string("mistral"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, qwen2, std::string("qwen2"))->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace muserve::bench

BENCHMARK_MAIN();
