// tp_bench: tensor parallelism on the CPU. Runs the same steps on one rank
// with T threads and on T ranks of one thread each (in-process
// communicator), and reports the step times, the all-reduce time per layer
// and the fraction of the step a rank spends in collectives. Time in a
// collective includes waiting for the slower rank (the barriers): that is
// what communication costs a step, imbalance included.
//
//   tp_bench [--preset small] [--threads 2] [--steps 32] [--prompt 64]
//            [--prefill 256]
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/bench_model.h"
#include "engine/api/absl_string_view.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/parallel/in_process_communicator.h"
#include "engine/parallel/tensor_parallel_backend.h"

namespace muserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string preset = "small";
  int32_t threads = 2;    // threads of the one rank, and number of ranks
  int32_t steps = 32;     // decode steps timed per batch size
  int32_t prompt = 64;    // tokens each decoded sequence starts with
  int32_t prefill = 256;  // tokens of the timed prefill
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "flags come in pairs: --name value\n");
    return false;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    auto as_int = [&](int32_t& out) { return absl::SimpleAtoi(AsAbsl(value), &out) && out >= 1; };
    bool ok = true;
    if (name == "--preset") {
      flags.preset = value;
    } else if (name == "--threads") {
      ok = as_int(flags.threads) && flags.threads >= 2;
    } else if (name == "--steps") {
      ok = as_int(flags.steps);
    } else if (name == "--prompt") {
      ok = as_int(flags.prompt);
    } else if (name == "--prefill") {
      ok = as_int(flags.prefill);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag %s %s\n", name.c_str(), value.c_str());
      return false;
    }
  }
  return true;
}

// A Communicator that times the calls it forwards to another. Used by one
// rank thread at a time, like the communicator it wraps.
class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}

  int32_t rank() const override { return inner_->rank(); }
  int32_t size() const override { return inner_->size(); }
  absl::Status AllReduceSum(std::span<float> buffer) override {
    return Timed(all_reduce_, [&] { return inner_->AllReduceSum(buffer); });
  }
  absl::Status AllGather(std::span<const float> in, std::span<float> out) override {
    return Timed(all_gather_, [&] { return inner_->AllGather(in, out); });
  }
  absl::Status Gather(std::span<const float> in, std::span<float> out, int32_t root) override {
    return Timed(all_gather_, [&] { return inner_->Gather(in, out, root); });
  }
  absl::Status Broadcast(std::span<float> buffer, int32_t root) override {
    return Timed(other_, [&] { return inner_->Broadcast(buffer, root); });
  }

  struct Tally {
    int64_t calls = 0;
    double seconds = 0;
  };
  Tally all_reduce() const { return all_reduce_; }
  Tally all_gather() const { return all_gather_; }
  void Reset() { all_reduce_ = all_gather_ = other_ = {}; }

 private:
  template <class Fn>
  absl::Status Timed(Tally& tally, Fn fn) {
    const auto start = Clock::now();
    absl::Status status = fn();
    tally.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    ++tally.calls;
    return status;
  }

  std::unique_ptr<Communicator> inner_;
  Tally all_reduce_, all_gather_, other_;  // all_gather_: AllGather and Gather
};

struct Backends {
  std::unique_ptr<Backend> one_rank;       // `threads` threads
  std::unique_ptr<Backend> ranks;          // `threads` ranks of one thread
  std::vector<TimedCommunicator*> timers;  // owned by `ranks`, rank order
};

absl::StatusOr<Backends> MakeBackends(const std::filesystem::path& dir, int32_t threads) {
  CpuBackendOptions options;
  options.num_blocks = 256;
  options.block_size = 16;
  options.max_num_batched_tokens = 2048;
  Backends b;
  absl::StatusOr<LoadedModel> model = LoadModel(dir);
  if (!model.ok()) return model.status();
  options.num_threads = threads;
  auto one = CpuBackend::Create(*std::move(model), options);
  if (!one.ok()) return one.status();
  b.one_rank = *std::move(one);

  model = LoadModel(dir);
  if (!model.ok()) return model.status();
  options.num_threads = 1;
  std::vector<std::unique_ptr<Communicator>> communicators;
  for (auto& c : MakeInProcessCommunicators(threads)) {
    auto timed = std::make_unique<TimedCommunicator>(std::move(c));
    b.timers.push_back(timed.get());
    communicators.push_back(std::move(timed));
  }
  std::vector<std::unique_ptr<Backend>> ranks;
  for (auto& c : communicators) {
    auto rank = CpuBackend::CreateRank(*model, *c, options);
    if (!rank.ok()) return rank.status();
    ranks.push_back(*std::move(rank));
  }
  auto group =
      TensorParallelBackend::Create(std::move(ranks), std::move(communicators), *std::move(model));
  if (!group.ok()) return group.status();
  b.ranks = *std::move(group);
  return b;
}

// `count` sequences of `prompt` tokens each, prefilled; then `steps`
// timed decode steps of all of them. Or, with steps == 0, one timed step
// prefilling `prompt` tokens of each sequence. `timers` are reset when the
// timed steps begin. Returns seconds per timed step.
absl::StatusOr<double> TimeSteps(Backend& backend, int32_t count, int32_t prompt, int32_t steps,
                                 const std::vector<TimedCommunicator*>& timers = {}) {
  const int32_t block = backend.kv_cache().block_size;
  const int64_t vocab = backend.config().vocab_size;
  const int32_t blocks_per_seq = (prompt + steps + block - 1) / block;
  StepBatch batch;
  std::vector<StepSequence> seqs(count);
  for (int32_t s = 0; s < count; ++s)
    for (int32_t b = 0; b < blocks_per_seq; ++b)
      seqs[s].block_table.push_back(s * blocks_per_seq + b);
  std::vector<float> logits;
  int32_t context = 0;
  // Appends `n` tokens to every sequence as one step and runs it.
  auto step = [&](int32_t n) -> absl::Status {
    batch = {};
    for (int32_t s = 0; s < count; ++s) {
      StepSequence seq = seqs[s];
      seq.query_start = batch.num_tokens();
      seq.query_len = n;
      seq.context_len = context + n;
      seq.sample = true;
      for (int32_t p = context; p < context + n; ++p) {
        batch.tokens.push_back((p * 31 + s * 7) % static_cast<int32_t>(vocab));
        batch.positions.push_back(p);
        batch.slot_mapping.push_back(int64_t{seq.block_table[p / block]} * block + p % block);
      }
      batch.sequences.push_back(std::move(seq));
    }
    context += n;
    logits.resize(static_cast<size_t>(count) * vocab);
    return backend.Forward(batch, logits);
  };
  if (steps == 0) {
    for (TimedCommunicator* t : timers) t->Reset();
    const auto start = Clock::now();
    if (absl::Status s = step(prompt); !s.ok()) return s;
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
  if (absl::Status s = step(prompt); !s.ok()) return s;
  for (TimedCommunicator* t : timers) t->Reset();
  const auto start = Clock::now();
  for (int32_t i = 0; i < steps; ++i)
    if (absl::Status s = step(1); !s.ok()) return s;
  return std::chrono::duration<double>(Clock::now() - start).count() / steps;
}

// The in-process all-reduce alone: `ranks` threads all-reducing `floats`
// floats `calls` times; seconds per call on rank 0. What a collective costs
// when no rank is late (the model runs add the waiting for the slower rank).
double TimeAllReduce(int32_t ranks, size_t floats, int calls) {
  std::vector<std::unique_ptr<InProcessCommunicator>> group = MakeInProcessCommunicators(ranks);
  double seconds = 0;
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float> buffer(floats, 1.0f);
      group[r]->AllReduceSum(buffer).IgnoreError();  // warm-up
      const auto start = Clock::now();
      for (int i = 0; i < calls; ++i) group[r]->AllReduceSum(buffer).IgnoreError();
      if (r == 0) seconds = std::chrono::duration<double>(Clock::now() - start).count() / calls;
    });
  }
  for (std::thread& t : threads) t.join();
  return seconds;
}

int Run(const Flags& flags) {
  auto model = BenchModel::Create(flags.preset, "tp_bench");
  if (!model.ok()) {
    std::fprintf(stderr, "cannot make the model: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto backends = MakeBackends((*model)->dir(), flags.threads);
  if (!backends.ok()) {
    std::fprintf(stderr, "cannot load the model: %s\n", backends.status().ToString().c_str());
    return 1;
  }
  const ModelConfig& c = backends->one_rank->config();
  std::printf("load average at start: %s\n", LoadAverage().c_str());
  std::printf("preset %s: %ld layers, hidden %ld, heads %ld/%ld, intermediate %ld, vocab %ld\n",
              flags.preset.c_str(), c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
              c.num_key_value_heads, c.intermediate_size, c.vocab_size);
  std::printf("one rank with %d threads against %d ranks of 1 thread\n", flags.threads,
              flags.threads);
  struct Workload {
    std::string name;
    int32_t count, prompt, steps;
  };
  const std::vector<Workload> workloads = {
      {"decode, batch 1", 1, flags.prompt, flags.steps},
      {"decode, batch 8", 8, flags.prompt, flags.steps},
      {"prefill " + std::to_string(flags.prefill) + " tokens", 1, flags.prefill, 0}};
  for (const Workload& w : workloads) {
    // Warm-up pass each (first touches of weights and buffers), then timed.
    for (Backend* b : {backends->one_rank.get(), backends->ranks.get()})
      if (auto s = TimeSteps(*b, w.count, w.prompt, std::min(w.steps, 2)); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
        return 1;
      }
    auto one = TimeSteps(*backends->one_rank, w.count, w.prompt, w.steps);
    auto many = TimeSteps(*backends->ranks, w.count, w.prompt, w.steps, backends->timers);
    if (!one.ok() || !many.ok()) {
      std::fprintf(stderr, "step failed\n");
      return 1;
    }
    // Per timed step: 2L + 1 all-reduces (2 per layer, and the embedding's)
    // and the LM head's gather. "Per layer" is 2 calls at the step's average
    // per call, so that the embedding's call is not counted against the
    // layers.
    const int32_t timed_steps = std::max(w.steps, 1);
    double worst_fraction = 0, per_layer_ms = 0, gather_ms = 0;
    for (TimedCommunicator* t : backends->timers) {
      const double reduce = t->all_reduce().seconds / timed_steps;
      const double gather = t->all_gather().seconds / timed_steps;
      worst_fraction = std::max(worst_fraction, (reduce + gather) / *many);
      if (t->rank() == 0) {
        const int64_t calls = std::max<int64_t>(t->all_reduce().calls, 1);
        per_layer_ms = 1e3 * 2 * t->all_reduce().seconds / static_cast<double>(calls);
        gather_ms = 1e3 * gather;
      }
    }
    std::printf(
        "%-22s TP=1: %8.3f ms/step | TP=%d: %8.3f ms/step (x%.2f) | all-reduce %.3f ms/layer "
        "(2 calls), gather %.3f ms/step, in collectives %.1f%% of the step (worst rank)\n",
        w.name.c_str(), 1e3 * *one, flags.threads, 1e3 * *many, *one / *many, per_layer_ms,
        gather_ms, 100 * worst_fraction);
  }
  for (int32_t rows : {1, 8, flags.prefill}) {
    const size_t floats = static_cast<size_t>(rows) * c.hidden_size;
    const double seconds = TimeAllReduce(flags.threads, floats, 200);
    std::printf(
        "all-reduce alone, %d ranks, %d rows x hidden (%zu KiB): %.1f us per call, "
        "%.1f us per layer (2 calls)\n",
        flags.threads, rows, floats * sizeof(float) / 1024, 1e6 * seconds, 2e6 * seconds);
  }
  std::printf("load average at end: %s\n", LoadAverage().c_str());
  return 0;
}

}  // namespace
}  // namespace muserve::bench

int main(int argc, char** argv) {
  muserve::bench::Flags flags;
  if (!muserve::bench::ParseFlags(argc, argv, flags)) return 2;
  return muserve::bench::Run(flags);
}
