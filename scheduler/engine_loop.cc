#include "scheduler/engine_loop.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <limits>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/api/check.h"
#include "engine/sampling/sampler.h"
#include "scheduler/output_processor.h"
#include "scheduler/scheduler.h"

namespace muserve {

absl::Status EngineLoopOptions::Validate() const {
  if (max_num_seqs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_seqs must be >= 1, got ", max_num_seqs));
  }
  if (max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens must be >= 1, got ", max_num_batched_tokens));
  }
  if (max_queue < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue must be >= 1, got ", max_queue));
  }
  return absl::OkStatus();
}

std::optional<RequestHandle::Event> RequestHandle::PopLocked() {
  if (!events_.empty()) {
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
  }
  if (finished_.has_value()) return *finished_;
  return std::nullopt;
}

RequestHandle::Event RequestHandle::Next() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [this] { return !events_.empty() || finished_.has_value(); });
  return *PopLocked();
}

std::optional<RequestHandle::Event> RequestHandle::NextFor(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [this] { return !events_.empty() || finished_.has_value(); });
  return PopLocked();
}

std::optional<RequestHandle::Event> RequestHandle::TryNext() {
  std::lock_guard lock(mutex_);
  return PopLocked();
}

void RequestHandle::SetListener(Listener listener) {
  std::lock_guard listener_lock(listener_mutex_);
  listener_ = std::move(listener);
  bool pending = false;
  {
    std::lock_guard lock(mutex_);
    pending = !events_.empty() || finished_.has_value();
  }
  if (pending && listener_) listener_();
}

void RequestHandle::Push(Event event) {
  {
    std::lock_guard lock(mutex_);
    if (finished_.has_value()) return;  // nothing follows Finished
    if (const auto* finished = std::get_if<Finished>(&event)) {
      // Kept aside (not queued) so that Next keeps returning it once the
      // deltas before it are read.
      finished_ = *finished;
    } else {
      events_.push_back(std::move(event));
    }
  }
  ready_.notify_all();
  std::lock_guard listener_lock(listener_mutex_);
  if (listener_) listener_();
}

namespace {

using Clock = std::chrono::steady_clock;

// Everything the loop keeps per request besides the scheduler's Sequence:
// the sampler's generator and token history live here, so a preempted
// sequence keeps them and seeded output never depends on the batch.
struct RequestState {
  std::shared_ptr<RequestHandle> handle;
  Request request;
  SamplerRng rng;
  TokenHistory history;
  // Under min_tokens these ids (the model's EOS unless ignore_eos, and the
  // stop ids) are banned from sampling, as vLLM's min-tokens processor does:
  // otherwise the model could still draw EOS and it would come out as an
  // ordinary token.
  std::vector<TokenId> banned_under_min_tokens;
  std::unique_ptr<OutputProcessor> output;
  Timings timings;
  int32_t num_preemptions = 0;

  RequestState(std::shared_ptr<RequestHandle> h, Request r, uint64_t seed)
      : handle(std::move(h)), request(std::move(r)), rng(seed) {}
};

}  // namespace

namespace {

// A seed from the system's entropy source, or from the clock where
// std::random_device is unavailable (it may throw).
uint64_t EntropySeed() {
  try {
    std::random_device device;
    return (uint64_t{device()} << 32) | device();
  } catch (const std::exception&) {
    return static_cast<uint64_t>(Clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
  }
}

}  // namespace

class EngineLoop::Impl {
 public:
  Impl(Backend& backend, const Tokenizer& tokenizer, std::vector<TokenId> eos_token_ids,
       const EngineLoopOptions& options)
      : backend_(backend),
        tokenizer_(tokenizer),
        eos_token_ids_(std::move(eos_token_ids)),
        options_(options),
        vocab_size_(static_cast<int32_t>(backend.config().vocab_size)),
        context_len_(backend.config().max_position_embeddings),
        num_blocks_(backend.kv_cache().num_blocks),
        block_size_(backend.kv_cache().block_size),
        scheduler_(SchedulerOptions{options.max_num_seqs, options.max_num_batched_tokens,
                                    backend.kv_cache().num_blocks, backend.kv_cache().block_size,
                                    options.enable_prefix_caching}) {
    load_.kv_blocks_total = scheduler_.kv().num_blocks();
    load_.kv_blocks_free = scheduler_.kv().num_free_blocks();
  }

  ~Impl() { Stop(); }

  void Start() {
    std::lock_guard join_lock(join_mutex_);
    std::lock_guard lock(mutex_);
    if (state_ != State::kNew) return;
    state_ = State::kRunning;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      if (state_ == State::kRunning) {
        state_ = State::kStopping;
      } else if (state_ == State::kNew) {
        state_ = State::kStopped;
      }
    }
    wake_.notify_all();
    // Several callers may Stop at once (a signal handler and a destructor,
    // say): one joins, the others wait for it.
    std::lock_guard join_lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }

  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(Request request) {
    if (absl::Status status = Validate(request); !status.ok()) return status;
    uint64_t seed = 0;
    if (request.sampling.seed.has_value()) {
      seed = *request.sampling.seed;
    } else {
      std::lock_guard lock(mutex_);
      seed = seed_source_();
    }
    auto handle = std::make_shared<RequestHandle>(
        RequestId{next_id_.fetch_add(1, std::memory_order_relaxed)});
    auto state = std::make_unique<RequestState>(handle, std::move(request), seed);
    state->timings.arrived = Clock::now();
    for (TokenId token : state->request.prompt_tokens) state->history.prompt_tokens.insert(token);
    if (!state->request.stop.ignore_eos) state->banned_under_min_tokens = eos_token_ids_;
    state->banned_under_min_tokens.insert(state->banned_under_min_tokens.end(),
                                          state->request.stop.stop_token_ids.begin(),
                                          state->request.stop.stop_token_ids.end());
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::kRunning) {
        return absl::UnavailableError("the engine loop is not running");
      }
      if (static_cast<int64_t>(inbox_.size()) + queued_ >= options_.max_queue) {
        return absl::ResourceExhaustedError(absl::StrCat("the waiting queue is full (max_queue ",
                                                         options_.max_queue, " requests)"));
      }
      inbox_.push_back(std::move(state));
    }
    wake_.notify_one();
    return handle;
  }

  void Abort(RequestId id) {
    {
      std::lock_guard lock(mutex_);
      // A stopped loop has already ended every request; nothing would drain it.
      if (state_ != State::kRunning) return;
      aborts_.push_back(id);
    }
    wake_.notify_one();
  }

  LoadSnapshot GetLoad() const {
    std::lock_guard lock(mutex_);
    return load_;
  }

 private:
  enum class State { kNew, kRunning, kStopping, kStopped };

  int32_t MaxOutputTokens(const Request& request) const {
    const int64_t room = context_len_ - static_cast<int64_t>(request.prompt_tokens.size());
    return static_cast<int32_t>(std::min<int64_t>(request.stop.max_tokens, room));
  }

  absl::Status Validate(const Request& request) const {
    const auto& prompt = request.prompt_tokens;
    if (prompt.empty()) return absl::InvalidArgumentError("prompt_tokens must not be empty");
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] < 0 || prompt[i] >= vocab_size_) {
        return absl::InvalidArgumentError(absl::StrCat("prompt_tokens[", i, "] = ", prompt[i],
                                                       " is outside the vocabulary [0, ",
                                                       vocab_size_, ")"));
      }
    }
    if (static_cast<int64_t>(prompt.size()) + 1 > context_len_) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_tokens has ", prompt.size(),
                                                     " tokens; the model's context of ",
                                                     context_len_, " leaves no room for output"));
    }
    if (absl::Status status = request.sampling.Validate(); !status.ok()) return status;
    if (absl::Status status = request.stop.Validate(); !status.ok()) return status;
    if (request.prefix_cache.salt.size() > PrefixCacheParams::kMaxCacheSaltBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix_cache.salt is ", request.prefix_cache.salt.size(),
                       " bytes; at most ", PrefixCacheParams::kMaxCacheSaltBytes, " are allowed"));
    }
    const auto& stop_ids = request.stop.stop_token_ids;
    for (size_t i = 0; i < stop_ids.size(); ++i) {
      if (stop_ids[i] >= vocab_size_) {
        return absl::InvalidArgumentError(absl::StrCat("stop_token_ids[", i, "] = ", stop_ids[i],
                                                       " is outside the vocabulary [0, ",
                                                       vocab_size_, ")"));
      }
    }
    // The K/V a request can need at most: every token but the last sampled.
    const int64_t max_kv_tokens =
        static_cast<int64_t>(prompt.size()) + MaxOutputTokens(request) - 1;
    const int64_t blocks = (max_kv_tokens + block_size_ - 1) / block_size_;
    if (blocks > num_blocks_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt_tokens (", prompt.size(), ") + stop.max_tokens (", request.stop.max_tokens,
          ") need ", blocks, " KV blocks; the whole pool has ", num_blocks_));
    }
    return absl::OkStatus();
  }

  void Run() {
    SchedulerStep step;
    std::vector<float> logits;
    std::vector<TokenId> sampled;
    std::vector<std::unique_ptr<RequestState>> inbox;
    std::vector<RequestId> aborts;
    while (true) {
      bool stopping = false;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] {
          return state_ != State::kRunning || !inbox_.empty() || !aborts_.empty() ||
                 scheduler_.has_work();
        });
        stopping = state_ != State::kRunning;
        inbox.swap(inbox_);
        aborts.swap(aborts_);
        // Drained requests count as queued until the scheduler admits them.
        queued_ += static_cast<int64_t>(inbox.size());
      }
      const Clock::time_point step_start = Clock::now();
      for (auto& state : inbox) {
        const RequestId id = state->handle->id();
        state->output = std::make_unique<OutputProcessor>(
            tokenizer_, state->request.prompt_tokens, state->request.stop,
            state->request.skip_special_tokens, eos_token_ids_, MaxOutputTokens(state->request),
            state->request.sampling.wants_logprobs());
        // The scheduler's Sequence keeps the tokens from here on.
        scheduler_.Add(id, std::move(state->request.prompt_tokens), state->request.priority,
                       state->request.prefix_cache);
        if (state->request.deadline) ++num_with_deadline_;
        requests_.emplace(id, std::move(state));
      }
      inbox.clear();
      for (RequestId id : aborts) FinishEarly(id, FinishReason::kAborted);
      aborts.clear();
      FinishExpired(step_start);
      if (stopping) {
        std::vector<RequestId> all;
        for (const auto& [id, state] : requests_) all.push_back(id);
        for (RequestId id : all) FinishEarly(id, FinishReason::kAborted);
        Publish(0, 0, false);
        std::lock_guard lock(mutex_);
        state_ = State::kStopped;
        return;
      }
      if (!scheduler_.has_work()) {
        Publish(0, 0, false);
        continue;
      }
      RunStep(step, logits, sampled, step_start);
    }
  }

  void RunStep(SchedulerStep& step, std::vector<float>& logits, std::vector<TokenId>& sampled,
               Clock::time_point step_start) {
    scheduler_.Schedule(step);
    MUSERVE_CHECK(!step.empty());
    const Clock::time_point now = Clock::now();
    for (RequestId id : step.admitted) {
      RequestState& state = *requests_.at(id);
      if (!state.timings.first_scheduled) state.timings.first_scheduled = now;
    }
    for (RequestId id : step.preempted) ++requests_.at(id)->num_preemptions;

    // Each sampled row's input, its uniform drawn from the request's
    // generator now, so that host and device sampling advance it alike.
    inputs_.clear();
    for (size_t i = 0; i < step.ids.size(); ++i) {
      if (!step.batch.sequences[i].sample) continue;
      RequestState& state = *requests_.at(step.ids[i]);
      const bool under_min_tokens =
          state.output->num_output_tokens() < state.request.stop.min_tokens;
      SampleInput input;
      input.params = &state.request.sampling;
      input.history = &state.history;
      input.banned_tokens = under_min_tokens
                                ? std::span<const TokenId>(state.banned_under_min_tokens)
                                : std::span<const TokenId>();
      input.uniform = DrawSampleUniform(state.request.sampling, state.rng);
      inputs_.push_back(input);
    }
    const size_t num_sampled = inputs_.size();
    const bool on_device = backend_.samples_on_device();
    const Clock::time_point forward_start = Clock::now();
    absl::Status status;
    if (on_device) {
      // Forward and sampling are one call; its time counts as forward time.
      tokens_.resize(num_sampled);
      status = backend_.ForwardSample(step.batch, inputs_, tokens_);
    } else {
      logits.resize(num_sampled * static_cast<size_t>(vocab_size_));
      status = backend_.Forward(step.batch, logits);
    }
    const int64_t forward_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - forward_start).count();
    if (!status.ok()) {
      // A batch the backend refuses is a bug of ours; end the step's requests
      // rather than retry it forever, and keep serving the others.
      std::fprintf(stderr, "engine loop: Forward failed: %s\n", status.ToString().c_str());
      tokens_.clear();
      for (RequestId id : step.ids) FinishEarly(id, FinishReason::kAborted);
      Publish(0, forward_ns, true);
      return;
    }

    sampled.clear();
    const Clock::time_point sample_start = Clock::now();
    if (!on_device) {
      for (size_t r = 0; r < num_sampled; ++r) {
        std::span<float> row(logits.data() + r * vocab_size_, vocab_size_);
        tokens_.push_back(sampler_.Sample(row, inputs_[r]));
      }
    }
    for (const SampledToken& token : tokens_) sampled.push_back(token.token);
    sample_ns_ +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sample_start).count();
    scheduler_.ApplyOutput(step, sampled);

    const Clock::time_point sampled_at = Clock::now();
    size_t k = 0;
    for (size_t i = 0; i < step.ids.size(); ++i) {
      if (!step.batch.sequences[i].sample) continue;
      const RequestId id = step.ids[i];
      RequestState& state = *requests_.at(id);
      const SampledToken& token = tokens_[k++];
      ++state.history.output_counts[token.token];
      if (!state.timings.first_token) state.timings.first_token = sampled_at;
      OutputProcessor::StepResult result = state.output->Append(token);
      if (!result.delta.token_ids.empty() || !result.delta.text.empty()) {
        state.handle->Push(std::move(result.delta));
      }
      if (result.finished) {
        Finished finished;
        finished.reason = result.reason;
        finished.matched_stop_token = result.matched_stop_token;
        finished.matched_stop_string = result.matched_stop_string;
        Complete(id, std::move(finished));
      }
    }
    tokens_.clear();
    const int64_t step_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - step_start).count();
    Publish(step_ns, forward_ns, true);
  }

  // Ends a request: frees its blocks and sends Finished (usage and timings
  // filled in here).
  void Complete(RequestId id, Finished finished) {
    auto it = requests_.find(id);
    MUSERVE_CHECK(it != requests_.end());
    RequestState& state = *it->second;
    const Sequence* seq = scheduler_.Find(id);
    MUSERVE_CHECK(seq != nullptr);
    finished.usage.prompt_tokens = seq->num_prompt_tokens;
    finished.usage.completion_tokens = state.output->num_output_tokens();
    finished.usage.cached_prompt_tokens = std::max(0, seq->num_cached_prompt_tokens);
    finished.num_preemptions = state.num_preemptions;
    if (state.request.deadline) --num_with_deadline_;
    state.timings.finished = Clock::now();
    finished.timings = state.timings;
    scheduler_.Remove(id);
    // Sent after the load snapshot is published (Publish), so that a
    // caller who sees Finished also sees its blocks free in GetLoad.
    finished_.emplace_back(std::move(state.handle), std::move(finished));
    requests_.erase(it);
  }

  // Ends a request before any stop criterion did (abort, deadline). Text held
  // back for a possible stop string is dropped: the output was cut, not
  // completed.
  void FinishEarly(RequestId id, FinishReason reason) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return;  // unknown or already finished
    Delta rest = it->second->output->Finish(/*release_held_text=*/false);
    if (!rest.token_ids.empty() || !rest.text.empty()) it->second->handle->Push(std::move(rest));
    Finished finished;
    finished.reason = reason;
    Complete(id, std::move(finished));
  }

  // Ends requests whose deadline has passed. Requests without a deadline cost
  // nothing here.
  void FinishExpired(Clock::time_point now) {
    if (num_with_deadline_ == 0) return;
    std::vector<RequestId> expired;
    for (const auto& [id, state] : requests_) {
      if (state->request.deadline && *state->request.deadline <= now) expired.push_back(id);
    }
    for (RequestId id : expired) FinishEarly(id, FinishReason::kDeadline);
  }

  // Publishes the load snapshot, then sends the Finished events of requests
  // that ended since the last call.
  void Publish(int64_t step_ns, int64_t forward_ns, bool count_step) {
    {
      // queued_ counts waiting requests; the scheduler is the truth after a
      // step (admissions and preemptions move requests in and out).
      std::lock_guard lock(mutex_);
      queued_ = scheduler_.num_waiting();
      load_.running = scheduler_.num_running();
      load_.waiting = scheduler_.num_waiting();
      load_.kv_blocks_free = scheduler_.kv().num_free_blocks();
      const PrefixCacheStats cache = scheduler_.kv().prefix_cache_stats();
      load_.kv_blocks_cached = cache.cached_blocks;
      load_.kv_blocks_evictable = cache.evictable_blocks;
      load_.prefix_cache_query_tokens = cache.query_tokens;
      load_.prefix_cache_hit_tokens = cache.hit_tokens;
      load_.num_preemptions = scheduler_.num_preemptions();
      if (count_step) ++load_.num_steps;
      load_.step_time_ns += step_ns;
      load_.forward_time_ns += forward_ns;
      load_.sample_time_ns += sample_ns_;
    }
    sample_ns_ = 0;
    for (auto& [handle, finished] : finished_) handle->Push(std::move(finished));
    finished_.clear();
  }

  Backend& backend_;
  const Tokenizer& tokenizer_;
  const std::vector<TokenId> eos_token_ids_;
  const EngineLoopOptions options_;
  const int32_t vocab_size_;
  const int64_t context_len_;
  // The pool's shape, for Submit's checks on caller threads.
  const int64_t num_blocks_;
  const int64_t block_size_;
  std::atomic<uint64_t> next_id_{1};

  // Engine-loop thread only.
  Scheduler scheduler_;
  absl::flat_hash_map<RequestId, std::unique_ptr<RequestState>> requests_;
  Sampler sampler_;                   // scratch reused by every sequence's draw
  std::vector<SampledToken> tokens_;  // this step's samples, reused
  std::vector<SampleInput> inputs_;   // this step's sampled rows, reused
  int64_t sample_ns_ = 0;             // this step's sampling time
  int64_t num_with_deadline_ = 0;     // requests_ entries with a deadline
  std::vector<std::pair<std::shared_ptr<RequestHandle>, Finished>> finished_;

  mutable std::mutex mutex_;
  std::mutex join_mutex_;  // held by Start and while joining in Stop; taken before mutex_
  // Seeds for requests without one: entropy is read once, at construction.
  std::mt19937_64 seed_source_ ABSL_GUARDED_BY(mutex_){EntropySeed()};
  std::condition_variable wake_;
  State state_ ABSL_GUARDED_BY(mutex_) = State::kNew;
  std::vector<std::unique_ptr<RequestState>> inbox_ ABSL_GUARDED_BY(mutex_);
  std::vector<RequestId> aborts_ ABSL_GUARDED_BY(mutex_);
  // Requests drained from the inbox and not yet admitted (the waiting queue).
  int64_t queued_ ABSL_GUARDED_BY(mutex_) = 0;
  LoadSnapshot load_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<EngineLoop>> EngineLoop::Create(Backend& backend,
                                                               const Tokenizer& tokenizer,
                                                               std::vector<TokenId> eos_token_ids,
                                                               const EngineLoopOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  const KvCacheGeometry kv = backend.kv_cache();
  if (kv.num_blocks < 1 || kv.block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("the backend's KV cache has ", kv.num_blocks,
                                                   " blocks of ", kv.block_size, " tokens"));
  }
  // A step the backend refuses would fail every time; catch it at start-up.
  if (options.max_num_batched_tokens > backend.max_num_batched_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_num_batched_tokens ", options.max_num_batched_tokens,
        " is more than the backend accepts per step (", backend.max_num_batched_tokens(), ")"));
  }
  return std::unique_ptr<EngineLoop>(new EngineLoop(
      std::make_unique<Impl>(backend, tokenizer, std::move(eos_token_ids), options)));
}

EngineLoop::EngineLoop(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EngineLoop::~EngineLoop() { Stop(); }
void EngineLoop::Start() { impl_->Start(); }
void EngineLoop::Stop() { impl_->Stop(); }
absl::StatusOr<std::shared_ptr<RequestHandle>> EngineLoop::Submit(Request request) {
  return impl_->Submit(std::move(request));
}
void EngineLoop::Abort(RequestId id) { impl_->Abort(id); }
LoadSnapshot EngineLoop::GetLoad() const { return impl_->GetLoad(); }

}  // namespace muserve
