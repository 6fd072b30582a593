#include "engine/parallel/tensor_parallel_backend.h"

#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace muserve {

absl::StatusOr<std::unique_ptr<TensorParallelBackend>> TensorParallelBackend::Create(
    std::vector<std::unique_ptr<Backend>> ranks,
    std::vector<std::unique_ptr<Communicator>> communicators, std::optional<LoadedModel> model) {
  if (ranks.size() < 2)
    return absl::InvalidArgumentError(
        absl::StrCat("a tensor-parallel group needs at least 2 ranks, got ", ranks.size()));
  const Backend& first = *ranks[0];
  for (size_t r = 1; r < ranks.size(); ++r) {
    const Backend& rank = *ranks[r];
    if (rank.config().vocab_size != first.config().vocab_size ||
        rank.config().num_hidden_layers != first.config().num_hidden_layers ||
        rank.kv_cache().block_size != first.kv_cache().block_size ||
        rank.kv_cache().num_blocks != first.kv_cache().num_blocks ||
        rank.max_num_batched_tokens() != first.max_num_batched_tokens())
      return absl::InvalidArgumentError(absl::StrCat("tensor-parallel rank ", r,
                                                     " differs from rank 0 in its model, KV "
                                                     "cache geometry or max_num_batched_tokens"));
  }
  std::unique_ptr<TensorParallelBackend> backend(
      new TensorParallelBackend(std::move(communicators), std::move(model), std::move(ranks)));
  try {
    backend->Start();
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the tensor-parallel rank threads: ", e.what()));
  }
  return backend;
}

TensorParallelBackend::TensorParallelBackend(
    std::vector<std::unique_ptr<Communicator>> communicators, std::optional<LoadedModel> model,
    std::vector<std::unique_ptr<Backend>> ranks)
    : model_(std::move(model)),
      communicators_(std::move(communicators)),
      ranks_(std::move(ranks)),
      statuses_(ranks_.size()) {}

void TensorParallelBackend::Start() {
  // A thread that fails to start leaves the ones started; the destructor
  // stops and joins them.
  for (int32_t r = 1; r < size(); ++r) threads_.emplace_back([this, r] { RankLoop(r); });
}

TensorParallelBackend::~TensorParallelBackend() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : threads_) t.join();
  // The ranks go before what they point into; the communicators then go
  // together, one thread each: tearing one down (NCCL's finalize) may wait
  // for its peers to tear down too.
  ranks_.clear();
  std::vector<std::thread> teardown;
  for (auto& communicator : communicators_) {
    try {
      teardown.emplace_back([&communicator] { communicator.reset(); });
    } catch (const std::system_error&) {
      communicator.reset();  // no thread to be had: one after the other
    }
  }
  for (std::thread& t : teardown) t.join();
}

void TensorParallelBackend::RankLoop(int32_t rank) {
  uint64_t seen = 0;
  while (true) {
    const StepBatch* batch;
    std::span<float> logits;
    bool sample;
    std::span<const SampleInput> inputs;
    std::span<SampledToken> out;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      batch = batch_;
      logits = logits_;
      sample = sample_;
      inputs = inputs_;
      out = out_;
    }
    // Rank 0's buffers: this rank only checks their sizes (see the header).
    absl::Status status = sample ? ranks_[rank]->ForwardSample(*batch, inputs, out)
                                 : ranks_[rank]->Forward(*batch, logits);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      statuses_[rank] = std::move(status);
      if (--pending_ == 0) work_done_.notify_one();
    }
  }
}

template <class Run0>
absl::Status TensorParallelBackend::RunStep(Run0 run0) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = size() - 1;
    ++generation_;
  }
  work_ready_.notify_all();
  absl::Status status = run0();
  std::unique_lock<std::mutex> lock(mutex_);
  work_done_.wait(lock, [&] { return pending_ == 0; });
  if (!status.ok()) return status;
  for (int32_t r = 1; r < size(); ++r)
    if (!statuses_[r].ok()) return statuses_[r];
  return absl::OkStatus();
}

absl::Status TensorParallelBackend::Forward(const StepBatch& batch, std::span<float> logits) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_ = &batch;
    logits_ = logits;
    sample_ = false;
  }
  return RunStep([&] { return ranks_[0]->Forward(batch, logits); });
}

absl::Status TensorParallelBackend::ForwardSample(const StepBatch& batch,
                                                  std::span<const SampleInput> inputs,
                                                  std::span<SampledToken> out) {
  if (!samples_on_device()) return Backend::ForwardSample(batch, inputs, out);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_ = &batch;
    sample_ = true;
    inputs_ = inputs;
    out_ = out;
  }
  return RunStep([&] { return ranks_[0]->ForwardSample(batch, inputs, out); });
}

}  // namespace muserve
