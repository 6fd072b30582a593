// End-to-end tests of `muserve chat`, `complete` and `health`: the executable
// runs as a subprocess against a fake server in this test process.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_inference_server.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/subprocess.h"

extern char** environ;

namespace muserve {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::ElementsAre;
using testing::FakeInferenceServer;
using testing::FakeInferenceService;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Runs `argv` with `input` on its stdin (through a file: sh redirects it).
ProcessResult RunWithInput(const std::vector<std::string>& argv, const std::string& input) {
  TempDir dir;
  const std::string input_path = (dir.path() / "stdin").string();
  std::ofstream(input_path, std::ios::binary) << input;
  std::vector<std::string> shell = {"/bin/sh", "-c", "exec \"$@\" < \"$0\"", input_path};
  shell.insert(shell.end(), argv.begin(), argv.end());
  return RunProcess(shell);
}

std::vector<std::string> Summary(const v1::ChatRequest& request) {
  std::vector<std::string> out;
  for (const v1::ChatMessage& m : request.messages()) {
    out.push_back(v1::ChatMessage::Role_Name(m.role()) + ":" + m.content());
  }
  return out;
}

class ClientCommandsTest : public ::testing::Test {
 protected:
  std::vector<std::string> Command(const std::string& name) {
    return {MUSERVE_BINARY, name, "--target", server_.target()};
  }
  FakeInferenceServer server_;
};

TEST_F(ClientCommandsTest, CompleteStreamsTheCompletionAndSendsTheFlags) {
  std::vector<std::string> argv = Command("complete");
  argv.insert(argv.end(), {"--max-tokens", "9", "--temperature=0.5", "--seed", "42", "--stop",
                           "END,\\n,a\\054b", "hello there"});
  const ProcessResult result = RunProcess(argv);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, FakeInferenceService::GenerateReply("hello there") + "\n");
  EXPECT_EQ(result.stderr_text, "");  // details only with --verbose

  const auto requests = server_.inference().generate_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].text(), "hello there");
  const v1::GenerationOptions& options = requests[0].options();
  EXPECT_EQ(options.stopping().max_tokens(), 9);
  EXPECT_THAT(options.stopping().stop_strings(), ElementsAre("END", "\n", "a,b"));
  EXPECT_FLOAT_EQ(options.sampling().temperature(), 0.5f);
  EXPECT_EQ(options.sampling().seed(), 42u);
}

TEST_F(ClientCommandsTest, CompleteSendsTheDocumentedDefaults) {
  std::vector<std::string> argv = Command("complete");
  argv.push_back("x");
  const ProcessResult result = RunProcess(argv);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  const auto requests = server_.inference().generate_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::GenerationOptions& options = requests[0].options();
  EXPECT_EQ(options.stopping().max_tokens(), 128);
  ASSERT_TRUE(options.sampling().has_temperature());
  EXPECT_EQ(options.sampling().temperature(), 0.0f);
  EXPECT_FALSE(options.sampling().has_seed());
  EXPECT_EQ(options.stopping().stop_strings_size(), 0);
}

TEST_F(ClientCommandsTest, CompleteVerbosePrintsFinishReasonUsageAndTimings) {
  std::vector<std::string> argv = Command("complete");
  argv.insert(argv.end(), {"--verbose", "abc"});
  const ProcessResult result = RunProcess(argv);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("[finish: length; tokens: 3 prompt (0 cached), 3 "
                                            "completion; time: queue 11 us, first token 222 us, "
                                            "total 3333 us]"));
}

TEST_F(ClientCommandsTest, CompleteReportsTheServersErrorAndExitsOne) {
  std::vector<std::string> argv = Command("complete");
  argv.push_back("fail:invalid");
  const ProcessResult result = RunProcess(argv);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.stdout_text, "");
  EXPECT_THAT(result.stderr_text,
              HasSubstr(std::string("INVALID_ARGUMENT: ") + FakeInferenceService::kInvalidMessage));
}

TEST_F(ClientCommandsTest, CompleteTimeoutEndsTheCallWithDeadlineExceeded) {
  std::vector<std::string> argv = Command("complete");
  argv.insert(argv.end(), {"--timeout-ms", "300", "wait"});
  const absl::Time start = absl::Now();
  const ProcessResult result = RunProcess(argv);
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.stdout_text, "waiting\n");
  EXPECT_THAT(result.stderr_text, HasSubstr("DEADLINE_EXCEEDED"));
}

TEST_F(ClientCommandsTest, ChatWithAMessageSendsOneTurnAndPrintsTheReply) {
  std::vector<std::string> argv = Command("chat");
  argv.insert(argv.end(), {"--system", "be brief", "--max-tokens", "5", "hi"});
  const ProcessResult result = RunProcess(argv);
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_EQ(result.stdout_text, FakeInferenceService::ChatReply(1, "hi") + "\n");
  const auto requests = server_.inference().chat_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(Summary(requests[0]), ElementsAre("ROLE_SYSTEM:be brief", "ROLE_USER:hi"));
  EXPECT_EQ(requests[0].options().stopping().max_tokens(), 5);
}

TEST_F(ClientCommandsTest, ChatWithAMessageExitsOneOnAnError) {
  std::vector<std::string> argv = Command("chat");
  argv.push_back("fail:exhausted");
  const ProcessResult result = RunProcess(argv);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr(std::string("RESOURCE_EXHAUSTED: ") +
                                            FakeInferenceService::kExhaustedMessage));
}

TEST_F(ClientCommandsTest, InteractiveChatKeepsTheHistoryUntilReset) {
  const ProcessResult result =
      RunWithInput(Command("chat"), "first\nsecond\n/reset\nthird\n/exit\nnever sent\n");
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  // No "> " prompt: stdin is not a terminal.
  EXPECT_EQ(result.stdout_text, FakeInferenceService::ChatReply(1, "first") + "\n" +
                                    FakeInferenceService::ChatReply(2, "second") + "\n" +
                                    FakeInferenceService::ChatReply(1, "third") + "\n");
  const auto requests = server_.inference().chat_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_THAT(Summary(requests[1]),
              ElementsAre("ROLE_USER:first",
                          "ROLE_ASSISTANT:" + FakeInferenceService::ChatReply(1, "first"),
                          "ROLE_USER:second"));
  EXPECT_THAT(Summary(requests[2]), ElementsAre("ROLE_USER:third"));
}

TEST_F(ClientCommandsTest, InteractiveChatReportsAnErrorAndContinues) {
  const ProcessResult result = RunWithInput(Command("chat"), "fail:exhausted\nstill here\n");
  ASSERT_EQ(result.exit_code, 0) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr(std::string("RESOURCE_EXHAUSTED: ") +
                                            FakeInferenceService::kExhaustedMessage));
  // The failed turn is not part of the history.
  EXPECT_EQ(result.stdout_text, FakeInferenceService::ChatReply(1, "still here") + "\n");
}

TEST_F(ClientCommandsTest, CtrlCDuringAReplyCancelsOnlyThatReply) {
  TempDir dir;
  const std::string out_path = (dir.path() / "stdout").string();
  const std::string err_path = (dir.path() / "stderr").string();
  int input[2];
  ASSERT_EQ(pipe(input), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input[0], STDIN_FILENO);
  posix_spawn_file_actions_addclose(&actions, input[1]);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv = Command("chat");
  std::vector<char*> cargv;
  for (std::string& arg : argv) cargv.push_back(arg.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, cargv[0], &actions, nullptr, cargv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(input[0]);

  const std::string first = "wait\n";
  ASSERT_EQ(write(input[1], first.data(), first.size()), static_cast<ssize_t>(first.size()));
  // Once the server has the request the call is in flight (and cancellable).
  for (int i = 0; i < 500 && server_.inference().chat_requests().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(server_.inference().chat_requests().size(), 1u);
  kill(pid, SIGINT);
  const std::string second = "after\n";
  ASSERT_EQ(write(input[1], second.data(), second.size()), static_cast<ssize_t>(second.size()));
  close(input[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << ReadFile(err_path);
  EXPECT_THAT(ReadFile(err_path), HasSubstr("CANCELLED"));
  EXPECT_EQ(ReadFile(out_path), "waiting\n" + FakeInferenceService::ChatReply(1, "after") + "\n");
  for (int i = 0; i < 200 && server_.inference().num_waits_cancelled() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(server_.inference().num_waits_cancelled(), 1);
}

TEST_F(ClientCommandsTest, HealthExitsZeroOnlyWhenServing) {
  server_.health().SetStatus("muserve.v1.Inference", HealthCheckResponse::NOT_SERVING);

  const ProcessResult serving = RunProcess(Command("health"));
  EXPECT_EQ(serving.exit_code, 0) << serving.stderr_text;
  EXPECT_EQ(serving.stdout_text, "SERVING\n");

  std::vector<std::string> argv = Command("health");
  argv.insert(argv.end(), {"--service", "muserve.v1.Inference"});
  const ProcessResult not_serving = RunProcess(argv);
  EXPECT_EQ(not_serving.exit_code, 1);
  EXPECT_EQ(not_serving.stdout_text, "NOT_SERVING\n");

  argv.back() = "no.such.Service";
  const ProcessResult unknown = RunProcess(argv);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.stdout_text, "SERVICE_UNKNOWN\n");
  EXPECT_THAT(unknown.stderr_text, HasSubstr("NOT_FOUND"));
}

TEST(ClientCommandsUnreachableTest, HealthOfAnUnreachableServerExitsOneWithAMessage) {
  std::string target;
  {
    FakeInferenceServer stopped;
    target = stopped.target();
  }
  const absl::Time start = absl::Now();
  const ProcessResult result =
      RunProcess({MUSERVE_BINARY, "health", "--target", target, "--timeout-ms", "300"});
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.stdout_text, "");
  EXPECT_THAT(result.stderr_text, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(result.stderr_text, HasSubstr(target));
}

TEST(ClientCommandsFlagsTest, EachCommandRefusesFlagsItDoesNotRead) {
  EXPECT_EQ(RunProcess({MUSERVE_BINARY, "health", "--max-tokens", "3"}).exit_code, 2);
  EXPECT_EQ(RunProcess({MUSERVE_BINARY, "complete", "--system", "s", "p"}).exit_code, 2);
  EXPECT_EQ(RunProcess({MUSERVE_BINARY, "chat", "--stop", "x", "hi"}).exit_code, 2);
  const ProcessResult help = RunProcess({MUSERVE_BINARY, "complete", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.stdout_text, HasSubstr("--max-tokens N       maximum tokens to generate "
                                          "(default 128)"));
}

}  // namespace
}  // namespace muserve
