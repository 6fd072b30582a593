#include "bench/loadgen/driver.h"

#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace muserve::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

// A conversation instance being played.
struct Conversation {
  const ConversationSpec* spec = nullptr;
  int64_t id = 0;
  int32_t target = 0;
  int32_t next_turn = 0;
  std::vector<int32_t> history_ids;       // kGenerateTokens
  std::vector<v1::ChatMessage> messages;  // kChat
};

class StreamCall;

// What a finished call hands back to the driver.
struct Completion {
  Conversation* conversation = nullptr;
  StreamCall* call = nullptr;  // ended; the driver deletes it
  RequestRecord record;
  std::vector<int32_t> reply_ids;
  std::string reply_text;
};

class PhaseDriver;

// One streaming call. When it ends (gRPC calls OnDone last, exactly once) it
// hands its Completion to the driver, whose thread deletes it: so the driver
// thread may cancel any call it has not yet seen end.
class StreamCall : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  StreamCall(PhaseDriver* driver, Clock::time_point base, Completion completion)
      : driver_(driver), base_(base), completion_(std::move(completion)) {}

  // The call's request (one of the two); must live until the call ends.
  v1::GenerateRequest generate_request;
  v1::ChatRequest chat_request;

  grpc::ClientContext& context() { return context_; }
  void set_start(Clock::time_point start) { completion_.record.start_ns = Ns(start); }

  void Begin() {
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    const Clock::time_point now = Clock::now();
    if (!ok) return;  // the stream ended; OnDone follows
    RequestRecord& record = completion_.record;
    if (response_.has_chunk()) {
      const v1::Chunk& chunk = response_.chunk();
      if (chunk.token_ids_size() > 0) {
        record.chunks.push_back({Ns(now), chunk.token_ids_size()});
        completion_.reply_ids.insert(completion_.reply_ids.end(), chunk.token_ids().begin(),
                                     chunk.token_ids().end());
      }
      completion_.reply_text += chunk.text();
    } else if (response_.has_finished()) {
      const v1::Usage& usage = response_.finished().usage();
      record.finished = true;
      record.prompt_tokens = usage.prompt_tokens();
      record.completion_tokens = usage.completion_tokens();
      record.cached_prompt_tokens = usage.cached_prompt_tokens();
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override;

  // Driver thread, before the driver has seen the call end.
  void CancelAtPhaseEnd() {
    completion_cancelled_ = true;
    context_.TryCancel();
  }

 private:
  int64_t Ns(Clock::time_point t) const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t - base_).count();
  }

  PhaseDriver* driver_;
  const Clock::time_point base_;
  grpc::ClientContext context_;
  v1::GenerateResponse response_;
  Completion completion_;
  std::atomic<bool> completion_cancelled_ = false;
};

// Events on the driver's timeline.
struct Event {
  enum class Kind { kStartConversation, kArrival, kSendTurn };
  Clock::time_point time;
  Kind kind;
  Conversation* conversation = nullptr;  // kSendTurn
  bool operator>(const Event& other) const { return time > other.time; }
};

class PhaseDriver {
 public:
  PhaseDriver(const std::vector<v1::Inference::Stub*>& stubs, const Workload& workload,
              const PhaseOptions& options, PhaseProgress* progress)
      : stubs_(stubs),
        workload_(workload),
        options_(options),
        progress_(progress),
        rng_(options.seed) {}

  PhaseResult Run() {
    start_ = Clock::now();
    if (options_.max_duration) {
      deadline_ = start_ + *options_.max_duration;
      cancel_at_ = *deadline_ + std::min<Clock::duration>(*options_.max_duration, kMaxGrace);
    }
    std::unique_lock lock(mutex_);
    if (options_.load.mode == LoadSpec::Mode::kConcurrency) {
      const auto slots = static_cast<int64_t>(options_.load.value);
      for (int64_t i = 0; i < slots; ++i) {
        events_.push({start_, Event::Kind::kStartConversation});
      }
    } else {
      events_.push({start_, Event::Kind::kArrival});
    }
    while (true) {
      while (!done_.empty()) {
        std::unique_ptr<Completion> completion = std::move(done_.front());
        done_.pop_front();
        lock.unlock();
        Finish(std::move(*completion));
        lock.lock();
      }
      const Clock::time_point now = Clock::now();
      if (Stopped() && !deadline_) deadline_ = now;  // sends nothing more
      if (!cancelled_ && !live_.empty() && (Stopped() || (cancel_at_ && now >= *cancel_at_))) {
        // Calls the server has not ended within the grace period: end them,
        // so that a server that stopped answering cannot hold the phase.
        // Unlocked: gRPC may run a cancelled call's OnDone on this thread,
        // and OnCallDone takes the lock. live_ is the driver thread's.
        cancelled_ = true;
        lock.unlock();
        for (StreamCall* call : live_) call->CancelAtPhaseEnd();
        lock.lock();
        continue;
      }
      // Once stopped, every event is due: none sends, and a turn waiting out
      // its think time must not hold the phase.
      if (!events_.empty() && (events_.top().time <= now || Stopped())) {
        const Event event = events_.top();
        events_.pop();
        lock.unlock();
        Handle(event, now);
        lock.lock();
        continue;
      }
      if (live_.empty() && events_.empty()) break;
      const auto woken = [this] { return !done_.empty(); };
      Clock::time_point wake = Clock::time_point::max();
      if (!events_.empty()) wake = events_.top().time;
      if (cancel_at_ && !cancelled_) wake = std::min(wake, *cancel_at_);
      // A stop request comes from a signal handler, which cannot notify.
      if (options_.stop != nullptr) wake = std::min(wake, now + kStopPoll);
      if (wake == Clock::time_point::max()) {
        cv_.wait(lock, woken);
      } else {
        cv_.wait_until(lock, wake, woken);
      }
    }
    PhaseResult result;
    result.records = std::move(records_);
    result.duration_s = std::chrono::duration<double>(last_end_ - start_).count();
    if (result.duration_s < 0) result.duration_s = 0;
    return result;
  }

  // Any thread.
  void OnCallDone(std::unique_ptr<Completion> completion) {
    std::lock_guard lock(mutex_);
    done_.push_back(std::move(completion));
    cv_.notify_one();
  }

 private:
  // The longest wait, after a duration bound, for the calls in flight.
  static constexpr Clock::duration kMaxGrace = std::chrono::seconds(30);
  static constexpr Clock::duration kStopPoll = std::chrono::milliseconds(50);

  bool Stopped() const { return options_.stop != nullptr && options_.stop->load(); }
  bool BeforeDeadline(Clock::time_point t) const { return !deadline_ || t < *deadline_; }
  // The request budget counts whole conversations: one starts only while the
  // requests sent plus the turns still to come of those started are under
  // max_requests, and a started conversation plays all its turns (until the
  // deadline). So later turns are never crowded out by new conversations.
  bool CanStart(Clock::time_point now) const {
    return sent_ + pending_turns_ < options_.max_requests && CanContinue(now);
  }
  bool CanContinue(Clock::time_point now) const { return BeforeDeadline(now) && !Stopped(); }

  void Schedule(Event event) {
    std::lock_guard lock(mutex_);
    events_.push(event);
  }

  // Driver thread.
  void Handle(const Event& event, Clock::time_point now) {
    switch (event.kind) {
      case Event::Kind::kStartConversation:
        if (CanStart(now)) Send(NewConversation(), event.time);
        break;
      case Event::Kind::kArrival:
        if (!CanStart(now)) break;
        Send(NewConversation(), event.time);
        if (const Clock::time_point next = NextArrival(event.time);
            CanStart(now) && BeforeDeadline(next)) {
          Schedule({next, Event::Kind::kArrival});
        }
        break;
      case Event::Kind::kSendTurn:
        if (CanContinue(now)) {
          Send(event.conversation, event.time);
        } else {
          EndConversation(event.conversation, now);
        }
        break;
    }
  }

  Clock::time_point NextArrival(Clock::time_point previous) {
    const double rate = options_.load.value;
    if (std::isinf(rate)) return previous;
    const double shape = options_.load.burstiness;
    const double gap_s = std::gamma_distribution<double>(shape, 1.0 / (rate * shape))(rng_);
    return previous +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap_s));
  }

  Conversation* NewConversation() {
    auto conversation = std::make_unique<Conversation>();
    const int64_t k = next_conversation_++;
    conversation->id = k;
    conversation->spec = &workload_.conversations[k % workload_.conversations.size()];
    conversation->target = static_cast<int32_t>(k % static_cast<int64_t>(stubs_.size()));
    if (conversation->spec->system) {
      v1::ChatMessage system;
      system.set_role(v1::ChatMessage::ROLE_SYSTEM);
      system.set_content(*conversation->spec->system);
      conversation->messages.push_back(std::move(system));
    }
    pending_turns_ += static_cast<int64_t>(conversation->spec->turns.size());
    Conversation* started = conversation.get();
    conversations_.emplace(k, std::move(conversation));
    return started;
  }

  v1::GenerationOptions Options(const Conversation& conversation, const TurnSpec& turn) const {
    v1::GenerationOptions options;
    options.mutable_sampling()->set_temperature(0);
    options.mutable_stopping()->set_max_tokens(turn.max_tokens);
    options.mutable_stopping()->set_ignore_eos(true);
    options.mutable_prefix_cache()->set_salt(absl::StrCat(options_.salt_prefix, conversation.id));
    return options;
  }

  // Starts the conversation's next turn, which was due at `scheduled`.
  void Send(Conversation* conversation, Clock::time_point scheduled) {
    const TurnSpec& turn = conversation->spec->turns[conversation->next_turn];
    Completion completion;
    completion.conversation = conversation;
    completion.record.conversation = conversation->id;
    completion.record.turn = conversation->next_turn;
    completion.record.target = conversation->target;
    completion.record.scheduled_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(scheduled - start_).count();
    auto* call = new StreamCall(this, start_, std::move(completion));
    if (options_.timeout) {
      call->context().set_deadline(std::chrono::system_clock::now() + *options_.timeout);
    }
    v1::Inference::Stub* stub = stubs_[conversation->target];
    ++sent_;
    --pending_turns_;
    live_.insert(call);
    if (progress_ != nullptr) ++progress_->sent;
    switch (conversation->spec->api) {
      case ApiKind::kGenerateTokens: {
        v1::GenerateRequest& request = call->generate_request;
        auto* ids = request.mutable_token_ids()->mutable_ids();
        ids->Add(conversation->history_ids.begin(), conversation->history_ids.end());
        ids->Add(turn.token_ids.begin(), turn.token_ids.end());
        *request.mutable_options() = Options(*conversation, turn);
        call->set_start(Clock::now());
        stub->async()->Generate(&call->context(), &request, call);
        break;
      }
      case ApiKind::kGenerateText: {
        v1::GenerateRequest& request = call->generate_request;
        request.set_text(turn.text);
        *request.mutable_options() = Options(*conversation, turn);
        call->set_start(Clock::now());
        stub->async()->Generate(&call->context(), &request, call);
        break;
      }
      case ApiKind::kChat: {
        v1::ChatRequest& request = call->chat_request;
        for (const v1::ChatMessage& message : conversation->messages) {
          *request.add_messages() = message;
        }
        v1::ChatMessage* user = request.add_messages();
        user->set_role(v1::ChatMessage::ROLE_USER);
        user->set_content(turn.text);
        *request.mutable_options() = Options(*conversation, turn);
        call->set_start(Clock::now());
        stub->async()->Chat(&call->context(), &request, call);
        break;
      }
    }
    call->Begin();
  }

  // Driver thread: records the request and moves its conversation on.
  void Finish(Completion completion) {
    Conversation* conversation = completion.conversation;
    const RequestRecord& record = completion.record;
    const Clock::time_point now = Clock::now();
    last_end_ = std::max(last_end_, start_ + std::chrono::nanoseconds(record.end_ns));
    if (progress_ != nullptr) ++(record.succeeded() ? progress_->succeeded : progress_->failed);
    const bool ok = record.succeeded();
    const bool refused = record.status_code == grpc::StatusCode::UNAVAILABLE;
    if (ok) AppendReply(*conversation, completion);
    records_.push_back(std::move(completion.record));
    live_.erase(completion.call);
    delete completion.call;
    ++conversation->next_turn;
    const bool more =
        ok && conversation->next_turn < static_cast<int32_t>(conversation->spec->turns.size());
    // A target refusing calls (UNAVAILABLE: down, draining) fails them at
    // once; a closed loop would spin. Its next conversation waits, longer
    // after each refusal in a row (10 ms doubling, at most 1 s).
    if (refused) {
      refusals_in_a_row_ = std::min(refusals_in_a_row_ + 1, 8);
    } else if (ok) {
      refusals_in_a_row_ = 0;
    }
    const Clock::duration backoff =
        refusals_in_a_row_ == 0
            ? Clock::duration::zero()
            : std::min<Clock::duration>(std::chrono::milliseconds(10 << (refusals_in_a_row_ - 1)),
                                        std::chrono::seconds(1));
    const Clock::time_point next = now + options_.think_time;
    if (more && CanContinue(now) && BeforeDeadline(next)) {
      Schedule({next, Event::Kind::kSendTurn, conversation});
    } else {
      EndConversation(conversation, now + backoff);
    }
  }

  void AppendReply(Conversation& conversation, const Completion& completion) {
    const TurnSpec& turn = conversation.spec->turns[conversation.next_turn];
    switch (conversation.spec->api) {
      case ApiKind::kGenerateTokens:
        conversation.history_ids.insert(conversation.history_ids.end(), turn.token_ids.begin(),
                                        turn.token_ids.end());
        conversation.history_ids.insert(conversation.history_ids.end(),
                                        completion.reply_ids.begin(), completion.reply_ids.end());
        break;
      case ApiKind::kGenerateText:
        break;
      case ApiKind::kChat: {
        v1::ChatMessage user;
        user.set_role(v1::ChatMessage::ROLE_USER);
        user.set_content(turn.text);
        conversation.messages.push_back(std::move(user));
        v1::ChatMessage reply;
        reply.set_role(v1::ChatMessage::ROLE_ASSISTANT);
        reply.set_content(completion.reply_text);
        conversation.messages.push_back(std::move(reply));
        break;
      }
    }
  }

  // Its turns not sent leave the budget; a closed loop's place goes to a new
  // conversation at `next`.
  void EndConversation(Conversation* conversation, Clock::time_point next) {
    pending_turns_ -=
        static_cast<int64_t>(conversation->spec->turns.size()) - conversation->next_turn;
    // Nothing refers to it any more (no call, no event): a long run holds
    // only the conversations in play.
    conversations_.erase(conversation->id);
    if (options_.load.mode == LoadSpec::Mode::kConcurrency && CanStart(next)) {
      Schedule({next, Event::Kind::kStartConversation});
    }
  }

  const std::vector<v1::Inference::Stub*>& stubs_;
  const Workload& workload_;
  const PhaseOptions& options_;
  PhaseProgress* progress_;
  std::mt19937_64 rng_;
  Clock::time_point start_;
  Clock::time_point last_end_;
  std::optional<Clock::time_point> deadline_;

  // Driver thread only.
  int64_t sent_ = 0;
  int64_t pending_turns_ = 0;
  int refusals_in_a_row_ = 0;  // of conversations started, not sent and not given up
  int64_t next_conversation_ = 0;
  std::unordered_map<int64_t, std::unique_ptr<Conversation>> conversations_;  // in play, by id
  std::vector<RequestRecord> records_;
  std::set<StreamCall*> live_;  // started, not yet seen to end
  std::optional<Clock::time_point> cancel_at_;
  bool cancelled_ = false;

  std::mutex mutex_;
  std::condition_variable cv_;
  // Guarded by mutex_.
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::deque<std::unique_ptr<Completion>> done_;
};

void StreamCall::OnDone(const grpc::Status& status) {
  const Clock::time_point now = Clock::now();
  completion_.record.end_ns = Ns(now);
  completion_.record.status_code = static_cast<int>(status.error_code());
  completion_.record.error_message = status.error_message();
  completion_.record.cancelled = completion_cancelled_ && !completion_.record.succeeded();
  completion_.call = this;
  // The last use of `this`: the driver may delete it from here on.
  driver_->OnCallDone(std::make_unique<Completion>(std::move(completion_)));
}

}  // namespace

std::string LoadSpec::Label() const {
  if (mode == Mode::kConcurrency) return absl::StrCat("concurrency ", value);
  return absl::StrCat("rate ", std::isinf(value) ? "inf" : absl::StrCat(value), "/s");
}

PhaseResult RunPhase(const std::vector<v1::Inference::Stub*>& stubs, const Workload& workload,
                     const PhaseOptions& options, PhaseProgress* progress) {
  PhaseDriver driver(stubs, workload, options, progress);
  return driver.Run();
}

}  // namespace muserve::loadgen
