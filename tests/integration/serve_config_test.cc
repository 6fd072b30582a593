// `muserve serve --config FILE` as a process: the file's values reach the
// server, flags on the command line override them, --print-config prints
// the effective configuration and reads back to it, the example file in
// deploy/config holds every key at its default, and a bad file or value
// exits 2 naming the key before anything starts.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/subprocess.h"

namespace muserve {
namespace {

using ::testing::AllOf;
using testing::BackgroundProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

const std::filesystem::path kExampleFile =
    std::filesystem::path(MUSERVE_SOURCE_DIR) / "deploy" / "config" / "muserve.yaml";

class ServeConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text, const std::string& name = "muserve.yaml") {
    const std::filesystem::path path = dir_.path() / name;
    std::ofstream(path) << text;
    return path.string();
  }

  // `muserve serve ARGS --print-config`, which must succeed.
  std::string PrintConfig(std::vector<std::string> args) {
    args.insert(args.begin(), {MUSERVE_BINARY, "serve"});
    args.push_back("--print-config");
    const ProcessResult result = RunProcess(args);
    EXPECT_EQ(result.exit_code, 0) << result.stderr_text;
    EXPECT_EQ(result.stderr_text, "");
    return result.stdout_text;
  }

  TempDir dir_;
};

// The keys of a configuration file, in order (comments and blank lines skipped).
std::vector<std::string> KeysOf(const std::string& yaml) {
  std::vector<std::string> keys;
  for (absl::string_view line : absl::StrSplit(yaml, '\n')) {
    if (line.empty() || line[0] == '#' || line == "---") continue;
    keys.emplace_back(line.substr(0, line.find(':')));
  }
  return keys;
}

TEST_F(ServeConfigTest, PrintConfigListsEveryServeFlagWithItsDefault) {
  const std::string printed = PrintConfig({});
  EXPECT_THAT(printed, AllOf(HasSubstr("\nmax-num-seqs: 64\n"), HasSubstr("\nmetrics-port: 9464\n"),
                             HasSubstr("\nlog-format: text\n"), HasSubstr("\ndrain-timeout: 30s\n"),
                             HasSubstr("\nkv-cache-memory: 1GiB\n"),
                             HasSubstr("# Sequences in one engine step\n")));
  EXPECT_THAT(printed, AllOf(Not(HasSubstr("\nconfig:")), Not(HasSubstr("print-config:"))));
}

TEST_F(ServeConfigTest, TheFileOverridesDefaultsAndTheCommandLineOverridesTheFile) {
  const std::string file =
      Write("max-num-seqs: 8\nlog-format: json\nport: 6000\nenable-prefix-caching: true\n");
  const std::string printed =
      PrintConfig({"--config", file, "--port", "7000", "--noenable-prefix-caching"});
  EXPECT_THAT(printed, AllOf(HasSubstr("\nmax-num-seqs: 8\n"), HasSubstr("\nlog-format: json\n"),
                             HasSubstr("\nport: 7000\n"), HasSubstr("\nmax-queue: 1024\n"),
                             HasSubstr("\nenable-prefix-caching: false\n")));
  // The order of --config among the flags, and the flags' spelling, do not matter.
  EXPECT_EQ(PrintConfig({"--port=7000", "--enable_prefix_caching=false", "--config=" + file}),
            printed);
}

TEST_F(ServeConfigTest, PrintedConfigurationReadsBackToItself) {
  const std::string chat_template = Write("{{ messages }}", "chat template.jinja");
  const std::string printed = PrintConfig(
      {"--host", "127.0.0.1", "--max-num-seqs", "5", "--enable-prefix-caching=false",
       "--drain-timeout", "2m", "--chat-template", chat_template, "--max-connection-age", "0",
       "--kv-cache-memory", "512MiB", "--log-level", "warn"});
  EXPECT_EQ(PrintConfig({"--config", Write(printed)}), printed);
}

TEST_F(ServeConfigTest, TheExampleFileHoldsEveryKeyAtItsDefault) {
  const std::string defaults = PrintConfig({});
  EXPECT_EQ(KeysOf(testing::ReadFileOrFail(kExampleFile)), KeysOf(defaults));
  EXPECT_EQ(PrintConfig({"--config", kExampleFile.string()}), defaults);
}

TEST_F(ServeConfigTest, ABadFileExitsTwoNamingTheFileLineAndKey) {
  const std::string file = Write("host: 127.0.0.1\nmax-num-seq: 3\nport: http\n");
  const ProcessResult result = RunProcess({MUSERVE_BINARY, "serve", "--config", file});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(
      result.stderr_text,
      AllOf(HasSubstr(file + ":2: unknown key 'max-num-seq' (did you mean 'max-num-seqs'?)"),
            HasSubstr(file + ":3: port: invalid value 'http'")));
  EXPECT_EQ(result.stdout_text, "");

  const ProcessResult absent =
      RunProcess({MUSERVE_BINARY, "serve", "--config", (dir_.path() / "absent.yaml").string()});
  EXPECT_EQ(absent.exit_code, 2);
  EXPECT_THAT(absent.stderr_text, HasSubstr("absent.yaml: cannot read"));
}

TEST_F(ServeConfigTest, AnOutOfRangeValueNamesWhereItCameFrom) {
  const std::string file = Write("log-level: info\nmax-num-seqs: 0\nlog-format: xml\n");
  const ProcessResult from_file =
      RunProcess({MUSERVE_BINARY, "serve", "--config", file, "--print-config"});
  EXPECT_EQ(from_file.exit_code, 2);
  EXPECT_THAT(from_file.stderr_text,
              AllOf(HasSubstr("max-num-seqs (" + file + ":2): must be in [1, 2147483647], got 0"),
                    HasSubstr("log-format (" + file + ":3): \"xml\" is not one of text, json")));
  EXPECT_EQ(from_file.stdout_text, "");

  // Given on the command line, the same value is named as the flag.
  const ProcessResult from_flag = RunProcess({MUSERVE_BINARY, "serve", "--config", file,
                                              "--log-format", "json", "--kv-cache-memory", "1x"});
  EXPECT_EQ(from_flag.exit_code, 2);
  EXPECT_THAT(from_flag.stderr_text, AllOf(HasSubstr("--kv-cache-memory: must be a positive size"),
                                           Not(HasSubstr("log-format"))));
}

TEST_F(ServeConfigTest, AnUnsupportedDeviceOrAMissingPathFailsBeforeAnythingStarts) {
  const std::string missing = (dir_.path() / "absent").string();
  const std::string file =
      Write("device: tpu\nmodel: " + missing + "\nchat-template: " + dir_.path().string() + "\n");
  const ProcessResult from_file = RunProcess({MUSERVE_BINARY, "serve", "--config", file});
  EXPECT_EQ(from_file.exit_code, 2);
  EXPECT_THAT(
      from_file.stderr_text,
      AllOf(HasSubstr("device (" + file + ":1): must be one of cpu"),
            HasSubstr("(the backends of this build"), HasSubstr("got 'tpu'"),
            HasSubstr("model (" + file + ":2): '" + missing + "' is not a directory"),
            HasSubstr("chat-template (" + file + ":3): cannot read '" + dir_.path().string())));
  EXPECT_THAT(from_file.stderr_text, Not(HasSubstr("listening")));

  const ProcessResult from_flags =
      RunProcess({MUSERVE_BINARY, "serve", "--device=gpu", "--chat-template", missing,
                  "--max-connection-age=-1s", "--print-config"});
  EXPECT_EQ(from_flags.exit_code, 2);
  EXPECT_THAT(from_flags.stderr_text,
              AllOf(HasSubstr("--device: must be one of cpu"),
                    HasSubstr("--chat-template: cannot read '" + missing + "'"),
                    HasSubstr("--max-connection-age: must be 0 (never close) or between 1s")));
  EXPECT_EQ(from_flags.stdout_text, "");
}

TEST_F(ServeConfigTest, TheServerRunsWithTheFilesSettings) {
  const std::string model = (dir_.path() / "model").string();
  const ProcessResult made = RunProcess({MUSERVE_BINARY, "make-model", "--out", model});
  ASSERT_EQ(made.exit_code, 0) << made.stderr_text;
  const std::string file = Write("model: " + model +
                                 "\nhost: 127.0.0.1\nport: 0\nmetrics-port: -1\n"
                                 "log-format: json\nmax-num-seqs: 3\n");
  BackgroundProcess server({MUSERVE_BINARY, "serve", "--config", file});
  ASSERT_TRUE(server.started());
  ASSERT_TRUE(server.WaitForStderr("\"msg\":\"serving\"", std::chrono::seconds(60)))
      << server.StderrText();
  EXPECT_THAT(server.StderrText(), HasSubstr("\"max_num_seqs\":3"));
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0) << server.StderrText();
}

}  // namespace
}  // namespace muserve
