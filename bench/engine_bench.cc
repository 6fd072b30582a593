// engine_bench: the CpuBackend's decode and prefill speed against this
// machine's limits, measured in the same run on the same number of threads.
//
//   decode tok/s (batch 1 and 8)  vs  bandwidth / bytes read per step
//   prefill tok/s (512 tokens)    vs  fp32 FMA peak / FLOPs per token
//
// Usage: engine_bench [--model DIR | --preset NAME] [--threads N]
//   Without --model, writes the preset (default `1b`: TinyLlama's shape, bf16,
//   ~2.2 GB) to a temp dir with MakeModel. kernel_bench times single projections.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench_steps.h"
#include "bench/machine_limits.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/kernel_table.h"
#include "engine/model/make_model.h"
#include "engine/model/weights.h"

namespace muserve::bench {
namespace {

struct Flags {
  std::string model_dir;
  std::string preset = "1b";
  int threads = 2;
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--model" && i + 1 < argc) {
      flags.model_dir = argv[++i];
    } else if (arg == "--preset" && i + 1 < argc) {
      flags.preset = argv[++i];
    } else if (arg == "--threads" && i + 1 < argc) {
      flags.threads = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: engine_bench [--model DIR | --preset NAME] [--threads N]\n");
      return false;
    }
  }
  return flags.threads >= 1;
}

// The machine may be shared: the load average is part of the conditions.
void PrintLoad(const char* when) {
  std::ifstream in("/proc/loadavg");
  std::string load;
  std::getline(in, load);
  std::printf("load average %s: %s\n", when, load.c_str());
}

int Run(const Flags& flags) {
  PrintLoad("at start");
  std::printf("kernels: %s, threads: %d\n", cpu::IsaName(cpu::BestIsa()), flags.threads);
  const double bandwidth = MeasureReadBandwidth(flags.threads, int64_t{1} << 30, 3);
  const double peak = MeasureFmaPeak(flags.threads, 3);
  std::printf("measured limits: read bandwidth %.2f GB/s, fp32 FMA peak %.1f GFLOP/s (%s)\n",
              bandwidth / 1e9, peak / 1e9, FmaPeakIsa());

  std::filesystem::path dir = flags.model_dir;
  std::filesystem::path temp;
  if (dir.empty()) {
    absl::StatusOr<ModelPreset> preset = ParseModelPreset(flags.preset);
    if (!preset.ok()) {
      std::fprintf(stderr, "%s\n", preset.status().ToString().c_str());
      return 2;
    }
    temp = std::filesystem::temp_directory_path() /
           ("muserve_bench_" + flags.preset + "_" + std::to_string(::getpid()));
    std::printf("writing the %s preset (bf16) to %s ...\n", flags.preset.c_str(), temp.c_str());
    MakeModelOptions options;
    options.out_dir = temp;
    options.preset = *preset;
    options.dtype = DType::kBF16;
    if (absl::Status s = MakeModel(options); !s.ok()) {
      std::fprintf(stderr, "MakeModel: %s\n", s.ToString().c_str());
      return 1;
    }
    dir = temp;
  }
  const int rc = RunModel(dir, flags.threads, bandwidth, peak);
  // Measured again after the runs, to show how much the limits drifted.
  std::printf("limits after the runs: read bandwidth %.2f GB/s, fp32 FMA peak %.1f GFLOP/s\n",
              MeasureReadBandwidth(flags.threads, int64_t{1} << 30, 3) / 1e9,
              MeasureFmaPeak(flags.threads, 3) / 1e9);
  PrintLoad("at end");
  if (!temp.empty()) std::filesystem::remove_all(temp);
  return rc;
}

}  // namespace
}  // namespace muserve::bench

int main(int argc, char** argv) {
  muserve::bench::Flags flags;
  if (!muserve::bench::ParseFlags(argc, argv, flags)) return 2;
  return muserve::bench::Run(flags);
}
