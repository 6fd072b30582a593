// `muserve chat`: a conversation with a running server's model (Chat). With a
// message argument, one turn; without, a loop reading one user turn per line.
#include <semaphore.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "server/cli/command.h"
#include "server/cli/shared_flags.h"
#include "server/client/command_support.h"
#include "server/client/conversation.h"
#include "server/client/inference_client.h"

namespace muserve::cli {
namespace {

constexpr std::string_view kUsage = R"(Usage: muserve chat [flags] ["message"]

Talks to a running server's model through its chat template (Chat).

With a message: sends it as one user turn, streams the reply to stdout and
exits (1 on an error, printed as status code and message on stderr).

Without: reads one user turn per line from stdin (prompt "> " when stdin is a
terminal), streams each reply and keeps the whole conversation, which is sent
again on every turn. An error is reported and the failed turn forgotten.
  /reset    forget the conversation (the system message stays)
  /exit     quit (so does end of input)
Ctrl-C while a reply streams stops that reply; at the prompt it quits.

Flags:
  --target HOST:PORT   the server (default localhost:50051)
  --system TEXT        system message opening the conversation (default: none)
  --max-tokens N       maximum tokens per reply (default 128)
  --temperature T      0 = greedy (default), otherwise sample from softmax(logits / T)
  --seed N             sampler seed (default: random)
  --timeout-ms N       deadline for each reply (default: none); the server must be
                       reachable within 5 s, or within N ms when that is shorter
)";

// How long to wait for the server to accept the connection.

// Posted by the SIGINT handler (sem_post is async-signal-safe).
sem_t interrupts;

void OnInterrupt(int) { sem_post(&interrupts); }

// While alive, Ctrl-C cancels the call in flight through `canceller`, or, when
// none is, quits the program as SIGINT would. The handler only posts a
// semaphore; the watcher thread does the work outside signal context.
class InterruptWatcher {
 public:
  explicit InterruptWatcher(client::CallCanceller* canceller) : canceller_(canceller) {
    sem_init(&interrupts, 0, 0);
    struct sigaction action = {};
    action.sa_handler = &OnInterrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, &previous_);
    thread_ = std::thread([this] { Watch(); });
  }
  ~InterruptWatcher() {
    stopping_ = true;
    sem_post(&interrupts);
    thread_.join();
    sigaction(SIGINT, &previous_, nullptr);
    sem_destroy(&interrupts);
  }
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

 private:
  void Watch() {
    while (true) {
      while (sem_wait(&interrupts) != 0 && errno == EINTR) {
      }
      if (stopping_) return;
      if (!canceller_->Cancel()) {
        std::fputs("\n", stdout);
        std::fflush(stdout);
        std::_Exit(130);  // 128 + SIGINT, as the shell reports an interrupted program
      }
    }
  }

  client::CallCanceller* canceller_;
  std::atomic<bool> stopping_ = false;
  struct sigaction previous_ = {};
  std::thread thread_;
};

// Runs one turn, streaming the reply to stdout; reports an error on stderr.
bool Turn(client::Conversation& conversation, std::string_view message,
          const client::CallOptions& call) {
  bool printed = false;
  auto finished = conversation.Send(
      message,
      [&](const v1::Chunk& chunk) {
        std::fwrite(chunk.text().data(), 1, chunk.text().size(), stdout);
        std::fflush(stdout);
        printed = printed || !chunk.text().empty();
      },
      call);
  if (finished.ok() || printed) std::fputs("\n", stdout);
  std::fflush(stdout);
  if (!finished.ok()) {
    std::fprintf(stderr, "muserve chat: %s\n", client::DescribeStatus(finished.status()).c_str());
  }
  return finished.ok();
}

int Interactive(client::Conversation& conversation, client::CallOptions call) {
  client::CallCanceller canceller;
  call.canceller = &canceller;
  InterruptWatcher watcher(&canceller);
  const bool terminal = isatty(STDIN_FILENO) != 0;
  std::string line;
  while (true) {
    if (terminal) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) {
      if (terminal) std::fputs("\n", stdout);
      break;
    }
    if (line == "/exit") break;
    if (line == "/reset") {
      conversation.Reset();
      if (terminal) std::fputs("(conversation cleared)\n", stderr);
      continue;
    }
    if (line.empty()) continue;
    Turn(conversation, line, call);
  }
  return 0;
}

int RunChat(const std::vector<std::string_view>& args) {
  if (args.size() > 1) {
    std::fprintf(stderr, "muserve chat: expected at most one message argument, got %zu\n%s",
                 args.size(), std::string(kUsage).c_str());
    return 2;
  }
  auto call = client::CallOptionsFromTimeout(absl::GetFlag(FLAGS_timeout_ms));
  if (!call.ok()) {
    std::fprintf(stderr, "muserve chat: %s\n", std::string(call.status().message()).c_str());
    return 2;
  }
  auto connected = client::ConnectForCall(absl::GetFlag(FLAGS_target), *call);
  if (!connected.ok()) {
    std::fprintf(stderr, "muserve chat: %s\n", client::DescribeStatus(connected.status()).c_str());
    return 1;
  }
  client::Conversation conversation(
      connected->get(), absl::GetFlag(FLAGS_system),
      client::BasicGenerationOptions(absl::GetFlag(FLAGS_max_tokens),
                                     absl::GetFlag(FLAGS_temperature), absl::GetFlag(FLAGS_seed)));
  if (args.size() == 1) return Turn(conversation, args[0], *call) ? 0 : 1;
  return Interactive(conversation, *call);
}

}  // namespace

const Command& ChatCommand() {
  static const Command command{
      "chat",
      "chat with a running server's model, one message or interactively",
      kUsage,
      {"target", "system", "max_tokens", "temperature", "seed", "timeout_ms"},
      &RunChat};
  return command;
}

}  // namespace muserve::cli
