// `muserve complete`: one Generate call on a running server with a text
// prompt; the output streams to stdout.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "server/cli/command.h"
#include "server/cli/shared_flags.h"
#include "server/client/command_support.h"
#include "server/client/inference_client.h"

ABSL_FLAG(std::vector<std::string>, stop, {},
          "complete: comma-separated stop strings, C escapes decoded (\\n, \\054 for a comma)");
ABSL_FLAG(bool, verbose, false, "complete: print the finish reason, usage and timings to stderr");

namespace muserve::cli {
namespace {

constexpr std::string_view kUsage = R"(Usage: muserve complete [flags] "prompt"

Sends the prompt to a running server (Generate) and streams the completion to
stdout, followed by a newline. Errors print the status code and message to
stderr and exit 1.

Flags:
  --target HOST:PORT   the server (default localhost:50051)
  --max-tokens N       maximum tokens to generate (default 128)
  --temperature T      0 = greedy (default), otherwise sample from softmax(logits / T)
  --seed N             sampler seed (default: random)
  --stop A,B,...       stop strings, comma-separated; C escapes are decoded, so
                       '\n' is a newline and '\054' a comma (default: none)
  --timeout-ms N       deadline for the call (default: none); the server must be
                       reachable within 5 s, or within N ms when that is shorter
  --verbose            print the finish reason, token counts and timings to stderr
)";

// How long to wait for the server to accept the connection.

int RunComplete(const std::vector<std::string_view>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "muserve complete: expected exactly one prompt argument, got %zu\n%s",
                 args.size(), std::string(kUsage).c_str());
    return 2;
  }
  auto stop = client::DecodeStopStrings(absl::GetFlag(FLAGS_stop));
  if (!stop.ok()) {
    std::fprintf(stderr, "muserve complete: %s\n", std::string(stop.status().message()).c_str());
    return 2;
  }
  auto call = client::CallOptionsFromTimeout(absl::GetFlag(FLAGS_timeout_ms));
  if (!call.ok()) {
    std::fprintf(stderr, "muserve complete: %s\n", std::string(call.status().message()).c_str());
    return 2;
  }

  v1::GenerateRequest request;
  request.set_text(std::string(args[0]));
  *request.mutable_options() = client::BasicGenerationOptions(
      absl::GetFlag(FLAGS_max_tokens), absl::GetFlag(FLAGS_temperature), absl::GetFlag(FLAGS_seed));
  for (std::string& text : *stop) {
    request.mutable_options()->mutable_stopping()->add_stop_strings(std::move(text));
  }
  auto connected = client::ConnectForCall(absl::GetFlag(FLAGS_target), *call);
  if (!connected.ok()) {
    std::fprintf(stderr, "muserve complete: %s\n",
                 client::DescribeStatus(connected.status()).c_str());
    return 1;
  }
  bool printed = false;
  const auto print = [&](const v1::Chunk& chunk) {
    std::fwrite(chunk.text().data(), 1, chunk.text().size(), stdout);
    std::fflush(stdout);
    printed = printed || !chunk.text().empty();
  };
  auto finished = (*connected)->Generate(request, print, *call);
  // The newline ends the completion; a failed call that printed nothing adds none.
  if (finished.ok() || printed) std::fprintf(stdout, "\n");
  std::fflush(stdout);
  if (!finished.ok()) {
    std::fprintf(stderr, "muserve complete: %s\n",
                 client::DescribeStatus(finished.status()).c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_verbose)) {
    std::fprintf(stderr, "%s\n", client::DescribeFinished(*finished).c_str());
  }
  return 0;
}

}  // namespace

const Command& CompleteCommand() {
  static const Command command{
      "complete",
      "stream a completion of one prompt from a running server",
      kUsage,
      {"target", "max_tokens", "temperature", "seed", "stop", "timeout_ms", "verbose"},
      &RunComplete};
  return command;
}

}  // namespace muserve::cli
