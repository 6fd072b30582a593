// prefix_cache_bench: multi-turn chat replay through the EngineLoop, with
// automatic prefix caching on and then off (a fresh backend and loop each).
//
// Each conversation starts with a system prompt shared by all conversations
// (--system-tokens) followed by --user-tokens of user text; every later turn's
// prompt is the previous prompt, the previous reply's exact token ids (what a
// chat template that only appends to the history produces) and new user text.
// User text is random token ids from --seed, identical in both replays.
// Replies are greedy with ignore_eos, --reply-tokens long. Conversations run
// concurrently, one client thread each: a conversation sends its first turn
// after a start delay and each next turn after a think time following its
// previous reply. Both are drawn from an exponential distribution with mean
// --think-ms (users act independently, so arrivals are a Poisson-like
// stream), or are exactly --think-ms with --think fixed; --think-ms 0 sends
// everything at once (every conversation in lockstep: the burstiest case).
// The draws come from --seed and are the same in both replays.
//
// Reports per turn: time to first token (Finished.timings: first_token -
// arrived, so queueing plus prefill) p50 and p90 with the cache on and off
// and their ratio, the queueing part of it (first_scheduled - arrived) p50,
// how spread out the turn's arrivals were, the prefix-cache hit rate (cached /
// prompt tokens) and the mean cached prompt tokens; and each replay's wall
// time and whether the greedy replies matched between the two replays.
//
//   prefix_cache_bench [--preset small] [--threads 2] [--conversations 32]
//                      [--turns 6] [--system-tokens 200] [--user-tokens 100]
//                      [--reply-tokens 100] [--think-ms 1000]
//                      [--think exponential|fixed] [--seed 1]
//                      [--batched-tokens 2048 (max_num_batched_tokens)]
//                      [--kv-blocks 0 (= every conversation's full history)]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_model.h"
#include "engine/api/absl_string_view.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/make_model.h"
#include "engine/model/weights.h"
#include "scheduler/engine_loop.h"

namespace muserve::bench {
namespace {

constexpr int32_t kBlockSize = 16;

struct Flags {
  std::string preset = "small";
  int32_t threads = 2;
  int32_t conversations = 32;
  int32_t turns = 6;
  int32_t system_tokens = 200;
  int32_t user_tokens = 100;
  int32_t reply_tokens = 100;
  int32_t think_ms = 1000;
  bool think_fixed = false;       // --think fixed: every think time is exactly think_ms
  int32_t batched_tokens = 2048;  // max_num_batched_tokens, the server's default
  int32_t seed = 1;
  int32_t kv_blocks = 0;  // 0: sized so that nothing is ever evicted
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "flags come in pairs: --name value\n");
    return false;
  }
  struct IntFlag {
    const char* name;
    int32_t* value;
    int32_t min;
  };
  const IntFlag int_flags[] = {
      {"--threads", &flags.threads, 1},
      {"--conversations", &flags.conversations, 1},
      {"--turns", &flags.turns, 1},
      {"--system-tokens", &flags.system_tokens, 0},
      {"--user-tokens", &flags.user_tokens, 1},
      {"--reply-tokens", &flags.reply_tokens, 1},
      {"--think-ms", &flags.think_ms, 0},
      {"--batched-tokens", &flags.batched_tokens, 1},
      {"--seed", &flags.seed, 0},
      {"--kv-blocks", &flags.kv_blocks, 0},
  };
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i];
    const std::string value = argv[i + 1];
    if (name == "--preset") {
      flags.preset = value;
      continue;
    }
    if (name == "--think" && (value == "fixed" || value == "exponential")) {
      flags.think_fixed = value == "fixed";
      continue;
    }
    bool ok = false;
    for (const IntFlag& flag : int_flags) {
      if (name != flag.name) continue;
      ok = absl::SimpleAtoi(AsAbsl(value), flag.value) && *flag.value >= flag.min;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag %s %s\n", name.c_str(), value.c_str());
      return false;
    }
  }
  return true;
}

// Tokens of a conversation's last turn: its prompt plus its reply.
int32_t ConversationTokens(const Flags& flags) {
  return flags.system_tokens + flags.turns * (flags.user_tokens + flags.reply_tokens);
}

int32_t DefaultKvBlocks(const Flags& flags) {
  // Every block a conversation's final history needs (it contains all
  // earlier turns' blocks), plus one spare, for all conversations at once:
  // cached blocks never have to be evicted (the shared system prompt's blocks
  // are counted once per conversation, so there is room to spare).
  const int32_t per_conversation = (ConversationTokens(flags) + kBlockSize - 1) / kBlockSize + 1;
  return per_conversation * flags.conversations;
}

// What one turn of one conversation measured.
struct TurnResult {
  double ttft_ms = 0;
  double wait_ms = 0;  // arrived to first scheduled: the queueing part of ttft_ms
  std::chrono::steady_clock::time_point arrived;
  int32_t prompt_tokens = 0;
  int32_t cached_prompt_tokens = 0;
  std::vector<TokenId> reply;
};

// [conversation][turn]
using Replay = std::vector<std::vector<TurnResult>>;

struct ReplayResult {
  Replay turns;
  double seconds = 0;
  LoadSnapshot load;
};

// The user text of every turn of every conversation, the shared system
// prompt, and the pause before every turn: the same in both replays.
struct Script {
  std::vector<TokenId> system;
  std::vector<std::vector<std::vector<TokenId>>> user;  // [conversation][turn]
  // [conversation][turn]: before turn 0 the conversation's start delay, before
  // a later turn the think time after the previous reply.
  std::vector<std::vector<std::chrono::microseconds>> pause;
};

Script MakeScript(const Flags& flags, int32_t vocab) {
  std::mt19937_64 rng(static_cast<uint64_t>(flags.seed));
  std::uniform_int_distribution<TokenId> token(0, vocab - 1);
  Script script;
  for (int32_t i = 0; i < flags.system_tokens; ++i) script.system.push_back(token(rng));
  script.user.resize(flags.conversations);
  for (auto& conversation : script.user) {
    conversation.resize(flags.turns);
    for (auto& text : conversation) {
      for (int32_t i = 0; i < flags.user_tokens; ++i) text.push_back(token(rng));
    }
  }
  // Drawn after the text so that the text does not depend on --think.
  std::exponential_distribution<double> think(1.0);
  script.pause.resize(flags.conversations);
  for (auto& conversation : script.pause) {
    for (int32_t turn = 0; turn < flags.turns; ++turn) {
      const double scale = flags.think_fixed ? 1.0 : think(rng);
      conversation.push_back(std::chrono::microseconds(
          static_cast<int64_t>(std::llround(scale * 1000.0 * flags.think_ms))));
    }
  }
  return script;
}

// One client: sends its turns in order, each after the previous reply.
absl::Status RunConversation(EngineLoop& loop, const Flags& flags, const Script& script,
                             int32_t conversation, std::vector<TurnResult>& out) {
  std::vector<TokenId> history = script.system;
  for (int32_t turn = 0; turn < flags.turns; ++turn) {
    if (turn > 0) {
      history.insert(history.end(), out[turn - 1].reply.begin(), out[turn - 1].reply.end());
    }
    std::this_thread::sleep_for(script.pause[conversation][turn]);
    const std::vector<TokenId>& user = script.user[conversation][turn];
    history.insert(history.end(), user.begin(), user.end());
    Request request;
    request.prompt_tokens = history;
    request.sampling.temperature = 0;
    request.stop.max_tokens = flags.reply_tokens;
    request.stop.ignore_eos = true;
    absl::StatusOr<std::shared_ptr<RequestHandle>> handle = loop.Submit(std::move(request));
    if (!handle.ok()) return handle.status();
    TurnResult& result = out[turn];
    while (true) {
      RequestHandle::Event event = (*handle)->Next();
      if (const auto* delta = std::get_if<Delta>(&event)) {
        result.reply.insert(result.reply.end(), delta->token_ids.begin(), delta->token_ids.end());
        continue;
      }
      const Finished& finished = std::get<Finished>(event);
      if (finished.reason != FinishReason::kLength || !finished.timings.first_token) {
        return absl::InternalError(absl::StrCat("conversation ", conversation, " turn ", turn + 1,
                                                " ended with ", FinishReasonName(finished.reason)));
      }
      result.ttft_ms = std::chrono::duration<double, std::milli>(*finished.timings.first_token -
                                                                 finished.timings.arrived)
                           .count();
      result.wait_ms =
          std::chrono::duration<double, std::milli>(
              finished.timings.first_scheduled.value_or(*finished.timings.first_token) -
              finished.timings.arrived)
              .count();
      result.arrived = finished.timings.arrived;
      result.prompt_tokens = finished.usage.prompt_tokens;
      result.cached_prompt_tokens = finished.usage.cached_prompt_tokens;
      break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayResult> RunReplay(const std::filesystem::path& dir, const Flags& flags,
                                       const Script& script, int32_t kv_blocks, bool prefix_caching,
                                       const Tokenizer& tokenizer) {
  absl::StatusOr<LoadedModel> model = LoadModel(dir);
  if (!model.ok()) return model.status();
  std::vector<TokenId> eos;
  for (int64_t id : model->config.eos_token_ids) eos.push_back(static_cast<TokenId>(id));
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend =
      CpuBackend::Create(std::move(*model), {.num_threads = flags.threads,
                                             .block_size = kBlockSize,
                                             .num_blocks = kv_blocks,
                                             .max_num_batched_tokens = flags.batched_tokens});
  if (!backend.ok()) return backend.status();
  absl::StatusOr<std::unique_ptr<EngineLoop>> loop =
      EngineLoop::Create(**backend, tokenizer, eos,
                         {.max_num_seqs = std::max(flags.conversations, 1),
                          .max_num_batched_tokens = flags.batched_tokens,
                          .max_queue = flags.conversations,
                          .enable_prefix_caching = prefix_caching});
  if (!loop.ok()) return loop.status();
  (*loop)->Start();

  ReplayResult result;
  result.turns.assign(flags.conversations, std::vector<TurnResult>(flags.turns));
  std::vector<absl::Status> statuses(flags.conversations);
  const auto start = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> clients;
    for (int32_t c = 0; c < flags.conversations; ++c) {
      clients.emplace_back(
          [&, c] { statuses[c] = RunConversation(**loop, flags, script, c, result.turns[c]); });
    }
  }  // joins every client
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.load = (*loop)->GetLoad();
  (*loop)->Stop();
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return result;
}

// Nearest-rank percentile of a non-empty list.
double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const size_t rank =
      static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

struct TurnSummary {
  double p50_ms = 0, p90_ms = 0;
  double wait_p50_ms = 0;
  double arrival_spread_ms = 0;  // first to last arrival of this turn over conversations
  double mean_prompt = 0, mean_cached = 0, hit_rate = 0;
};

TurnSummary Summarize(const Replay& replay, int32_t turn) {
  std::vector<double> ttft, wait;
  int64_t prompt = 0, cached = 0;
  auto first = replay.front()[turn].arrived, last = first;
  for (const auto& conversation : replay) {
    ttft.push_back(conversation[turn].ttft_ms);
    wait.push_back(conversation[turn].wait_ms);
    first = std::min(first, conversation[turn].arrived);
    last = std::max(last, conversation[turn].arrived);
    prompt += conversation[turn].prompt_tokens;
    cached += conversation[turn].cached_prompt_tokens;
  }
  const double n = static_cast<double>(replay.size());
  return {.p50_ms = Percentile(ttft, 50),
          .p90_ms = Percentile(ttft, 90),
          .wait_p50_ms = Percentile(wait, 50),
          .arrival_spread_ms = std::chrono::duration<double, std::milli>(last - first).count(),
          .mean_prompt = static_cast<double>(prompt) / n,
          .mean_cached = static_cast<double>(cached) / n,
          .hit_rate = prompt > 0 ? static_cast<double>(cached) / static_cast<double>(prompt) : 0};
}

void PrintLoad(const char* label, const ReplayResult& r) {
  const LoadSnapshot& load = r.load;
  std::printf(
      "%s: wall %.2f s, %lld steps, %lld preemptions, prefix cache %lld / %lld prompt tokens hit, "
      "blocks at end: %d cached (%d evictable), %d available of %d\n",
      label, r.seconds, static_cast<long long>(load.num_steps),
      static_cast<long long>(load.num_preemptions),
      static_cast<long long>(load.prefix_cache_hit_tokens),
      static_cast<long long>(load.prefix_cache_query_tokens), load.kv_blocks_cached,
      load.kv_blocks_evictable, load.kv_blocks_free, load.kv_blocks_total);
}

void PrintReport(const Flags& flags, const ReplayResult& on, const ReplayResult& off) {
  // TTFT = first_token - arrived; "wait" = first_scheduled - arrived, the
  // part of it spent queued before the request's first step; "spread" = first
  // to last arrival of the turn over all conversations (how bursty it was).
  std::printf("%4s %7s | %9s %9s %6s | %9s %9s %6s | %9s %9s | %9s %9s | %6s %7s\n", "turn",
              "prompt", "p50 on", "p50 off", "ratio", "p90 on", "p90 off", "ratio", "wait on",
              "wait off", "spread on", "spread off", "hit %", "cached");
  for (int32_t t = 0; t < flags.turns; ++t) {
    const TurnSummary a = Summarize(on.turns, t);
    const TurnSummary b = Summarize(off.turns, t);
    std::printf(
        "%4d %7.0f | %7.1fms %7.1fms %6.3f | %7.1fms %7.1fms %6.3f | %7.1fms %7.1fms | %7.0fms "
        "%7.0fms | %5.1f%% %7.1f\n",
        t + 1, a.mean_prompt, a.p50_ms, b.p50_ms, a.p50_ms / b.p50_ms, a.p90_ms, b.p90_ms,
        a.p90_ms / b.p90_ms, a.wait_p50_ms, b.wait_p50_ms, a.arrival_spread_ms, b.arrival_spread_ms,
        100.0 * a.hit_rate, a.mean_cached);
  }
  PrintLoad("cache on ", on);
  PrintLoad("cache off", off);
  // Greedy replies should not depend on whether K/V came from the cache; a
  // difference points at a reuse bug (or at float reassociation flipping a
  // near-tie, which then shows up as a handful, not most).
  int32_t same = 0;
  for (int32_t c = 0; c < flags.conversations; ++c) {
    for (int32_t t = 0; t < flags.turns; ++t) {
      same += on.turns[c][t].reply == off.turns[c][t].reply ? 1 : 0;
    }
  }
  std::printf("replies identical with and without the cache: %d of %d\n", same,
              flags.conversations * flags.turns);
  const TurnSummary last_on = Summarize(on.turns, flags.turns - 1);
  const TurnSummary last_off = Summarize(off.turns, flags.turns - 1);
  std::printf("turn %d TTFT on/off: p50 %.3f, p90 %.3f (goal <= 0.25)\n", flags.turns,
              last_on.p50_ms / last_off.p50_ms, last_on.p90_ms / last_off.p90_ms);
}

int Run(const Flags& flags) {
  auto model = BenchModel::Create(flags.preset, "prefix_cache_bench");
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const std::filesystem::path& dir = (*model)->dir();
  const int32_t vocab =
      static_cast<int32_t>(PresetConfig((*model)->preset(), DType::kF32).vocab_size);
  const Script script = MakeScript(flags, vocab);
  const int32_t kv_blocks = flags.kv_blocks > 0 ? flags.kv_blocks : DefaultKvBlocks(flags);
  std::printf(
      "prefix_cache_bench: preset %s (f32), %d threads; %d conversations x %d turns; shared "
      "system prompt %d tokens, user text %d and reply %d tokens per turn (greedy, ignore_eos), "
      "think %s %d ms; last prompt %d tokens\n",
      flags.preset.c_str(), flags.threads, flags.conversations, flags.turns, flags.system_tokens,
      flags.user_tokens, flags.reply_tokens, flags.think_fixed ? "fixed" : "exponential, mean",
      flags.think_ms, ConversationTokens(flags) - flags.reply_tokens);
  std::printf("KV pool: %d blocks of %d tokens (%s); max_num_seqs %d, max_num_batched_tokens %d\n",
              kv_blocks, kBlockSize,
              flags.kv_blocks > 0 ? "--kv-blocks" : "every history, no eviction",
              flags.conversations, flags.batched_tokens);
  std::printf("load average at start: %s\n", LoadAverage().c_str());
  std::fflush(stdout);
  absl::StatusOr<ReplayResult> on =
      RunReplay(dir, flags, script, kv_blocks, true, (*model)->tokenizer());
  absl::StatusOr<ReplayResult> off =
      on.ok() ? RunReplay(dir, flags, script, kv_blocks, false, (*model)->tokenizer())
              : on.status();
  if (!on.ok() || !off.ok()) {
    std::fprintf(stderr, "replay: %s\n",
                 (!on.ok() ? on.status() : off.status()).ToString().c_str());
    return 1;
  }
  PrintReport(flags, *on, *off);
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
