// The configuration file loader over a set of flags shaped like serve's:
// precedence (default < file < command line), each flag's own parser, every
// class of error naming the file, line and key, and --print-config's output
// reading back to the same configuration.
#include "server/cli/config_file.h"

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fixtures.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on");
ABSL_FLAG(int32_t, max_num_seqs, 64, "Sequences in one engine step");
ABSL_FLAG(bool, enable_prefix_caching, true, "Reuse the KV of cached prompt prefixes");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30), "On SIGTERM, time for streams");
ABSL_FLAG(std::optional<std::string>, chat_template, std::nullopt, "Jinja file");
ABSL_FLAG(std::string, config, "", "YAML file of flags");
ABSL_FLAG(bool, print_config, false, "Print the effective configuration");

namespace muserve::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class ConfigFileTest : public ::testing::Test {
 protected:
  // The schema a command with these flags would have.
  const ConfigSchema schema_{{"host", "max_num_seqs", "enable_prefix_caching", "drain_timeout",
                              "chat_template", "config", "print_config"},
                             {"config", "print_config"}};

  std::string Write(const std::string& text, const std::string& name = "muserve.yaml") {
    const std::filesystem::path path = dir_.path() / name;
    std::ofstream(path) << text;
    return path.string();
  }

  // Applies `text` as if no flag had been given on the command line.
  absl::StatusOr<FlagSources> Apply(const std::string& text) {
    return schema_.Apply(Write(text), [](std::string_view) { return false; });
  }

  std::string ErrorOf(const std::string& text) {
    auto applied = Apply(text);
    EXPECT_FALSE(applied.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(applied.status())) << applied.status();
    return std::string(applied.status().message());
  }

  std::string File() const { return (dir_.path() / "muserve.yaml").string(); }

  // Every test starts from, and leaves, the defaults.
  static void ResetToDefaults() {
    for (absl::string_view name : {"host", "max_num_seqs", "enable_prefix_caching", "drain_timeout",
                                   "chat_template", "config", "print_config"}) {
      absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      std::string error;
      ASSERT_TRUE(flag->ParseFrom(flag->DefaultValue(), &error)) << error;
    }
  }
  void SetUp() override { ResetToDefaults(); }
  void TearDown() override { ResetToDefaults(); }

  testing::TempDir dir_;
};

TEST_F(ConfigFileTest, EachLevelOverridesTheOneBelow) {
  // max-num-seqs was given on the command line: the file does not change it.
  absl::SetFlag(&FLAGS_max_num_seqs, 7);
  auto applied = schema_.Apply(Write("max-num-seqs: 32\nhost: 10.0.0.1\n"),
                               [](std::string_view flag) { return flag == "max_num_seqs"; });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_max_num_seqs), 7);              // command line
  EXPECT_EQ(absl::GetFlag(FLAGS_host), "10.0.0.1");             // file
  EXPECT_EQ(absl::GetFlag(FLAGS_enable_prefix_caching), true);  // default

  EXPECT_EQ(applied->Describe("max_num_seqs"), "--max-num-seqs");
  EXPECT_EQ(applied->Describe("host"), "host (" + File() + ":2)");
  EXPECT_EQ(applied->Describe("enable_prefix_caching"), "--enable-prefix-caching");
}

TEST_F(ConfigFileTest, ValuesGoThroughEachFlagsOwnParser) {
  auto applied = Apply(
      "drain_timeout: 1m30s\n"  // underscores are accepted too
      "enable-prefix-caching: false\n"
      "chat-template: /etc/muserve/chat.jinja\n"
      "max-num-seqs: '16'\n");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_drain_timeout), absl::Seconds(90));
  EXPECT_FALSE(absl::GetFlag(FLAGS_enable_prefix_caching));
  EXPECT_EQ(absl::GetFlag(FLAGS_chat_template), "/etc/muserve/chat.jinja");
  EXPECT_EQ(absl::GetFlag(FLAGS_max_num_seqs), 16);
  EXPECT_EQ(applied->Describe("drain_timeout"), "drain-timeout (" + File() + ":1)");
}

TEST_F(ConfigFileTest, AnEmptyOrNullValueIsTheEmptyString) {
  absl::SetFlag(&FLAGS_chat_template, "/a.jinja");
  ASSERT_TRUE(Apply("host:\nchat-template: ''\n").ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_host), "");
  EXPECT_EQ(absl::GetFlag(FLAGS_chat_template), std::nullopt);
}

TEST_F(ConfigFileTest, AnUnknownKeyNamesTheNearestKnownOne) {
  EXPECT_EQ(ErrorOf("host: a\nmax-num-seq: 3\n"),
            File() + ":2: unknown key 'max-num-seq' (did you mean 'max-num-seqs'?)");
  EXPECT_EQ(
      ErrorOf("tensor-parallelism-degree: 2\n"),
      File() + ":1: unknown key 'tensor-parallelism-degree' (--print-config lists every key)");
}

TEST_F(ConfigFileTest, CommandLineOnlyFlagsAreNotKeys) {
  EXPECT_EQ(ErrorOf("config: other.yaml\n"),
            File() + ":1: 'config' can only be given on the command line");
  EXPECT_EQ(ErrorOf("host: a\nprint-config: true\n"),
            File() + ":2: 'print-config' can only be given on the command line");
}

TEST_F(ConfigFileTest, AKeyGivenTwiceIsAnErrorInEitherSpelling) {
  EXPECT_EQ(ErrorOf("max-num-seqs: 1\nhost: a\nmax_num_seqs: 2\n"),
            File() + ":3: duplicate key 'max-num-seqs' (first set on line 1)");
}

TEST_F(ConfigFileTest, AMappingOrListWhereAValueBelongsIsNamed) {
  EXPECT_EQ(ErrorOf("host:\n  name: a\n"),
            File() + ":1: host: expected a single value, got a mapping");
  EXPECT_EQ(ErrorOf("host: [a, b]\n"), File() + ":1: host: expected a single value, got a list");
}

TEST_F(ConfigFileTest, AValueTheFlagCannotParseIsNamedWithTheDefault) {
  EXPECT_EQ(ErrorOf("max-num-seqs: many\n"),
            File() + ":1: max-num-seqs: invalid value 'many' (the default is '64')");
  EXPECT_EQ(ErrorOf("\ndrain-timeout: 30\n"),
            File() + ":2: drain-timeout: invalid value '30' (the default is '30s')");
  EXPECT_EQ(ErrorOf("enable-prefix-caching: maybe\n"),
            File() + ":1: enable-prefix-caching: invalid value 'maybe' (the default is 'true')");
  EXPECT_EQ(ErrorOf("max-num-seqs:\n"),
            File() + ":1: max-num-seqs: invalid value '' (the default is '64')");
}

TEST_F(ConfigFileTest, EveryProblemIsReportedAndNoFlagChanges) {
  const std::string error =
      ErrorOf("host: 10.0.0.1\nmax-num-seqs: x\nport: 1\ndrain-timeout: 5s\n");
  EXPECT_EQ(error, File() + ":2: max-num-seqs: invalid value 'x' (the default is '64')\n" + File() +
                       ":3: unknown key 'port' (--print-config lists every key)");
  EXPECT_EQ(absl::GetFlag(FLAGS_host), "0.0.0.0");
  EXPECT_EQ(absl::GetFlag(FLAGS_drain_timeout), absl::Seconds(30));
}

TEST_F(ConfigFileTest, AnEmptyOrCommentOnlyFileIsAnError) {
  EXPECT_THAT(ErrorOf(""), AllOf(HasSubstr(File() + ": no settings"), HasSubstr("port: 50051")));
  EXPECT_THAT(ErrorOf("# nothing yet\n"), HasSubstr(File() + ": no settings"));
}

TEST_F(ConfigFileTest, AnAbsentFileOrADirectoryIsAnError) {
  auto absent = schema_.Apply(dir_.path() / "absent.yaml", [](std::string_view) { return false; });
  EXPECT_EQ(absent.status().message(),
            (dir_.path() / "absent.yaml").string() + ": cannot read: No such file or directory");
  auto directory = schema_.Apply(dir_.path(), [](std::string_view) { return false; });
  EXPECT_EQ(directory.status().message(), dir_.path().string() + ": is a directory");
}

TEST_F(ConfigFileTest, MalformedYamlGivesTheLineAndColumn) {
  EXPECT_EQ(ErrorOf("host: a\nmax-num-seqs: [1\n"),
            File() + ":3:1: malformed YAML: end of sequence flow not found");
  EXPECT_THAT(ErrorOf("host: a\n  max-num-seqs: 2\n"),
              AllOf(HasSubstr(File() + ":2:"), HasSubstr("malformed YAML")));
}

TEST_F(ConfigFileTest, TheFileHoldsOneMapping) {
  EXPECT_EQ(ErrorOf("host: a\n---\nhost: b\n"), File() + ": holds 2 YAML documents; expected one");
  EXPECT_EQ(ErrorOf("- host: a\n"),
            File() + ":1: expected a mapping of flag names to values, got a list");
  EXPECT_EQ(ErrorOf("? [a, b]\n: 1\n"), File() + ":1: a key must be a flag name, got a list");
}

TEST_F(ConfigFileTest, PrintedConfigurationReadsBackToTheSameValues) {
  absl::SetFlag(&FLAGS_host, "10.0.0.1");
  absl::SetFlag(&FLAGS_max_num_seqs, 3);
  absl::SetFlag(&FLAGS_enable_prefix_caching, false);
  absl::SetFlag(&FLAGS_drain_timeout, absl::Milliseconds(1500));
  absl::SetFlag(&FLAGS_chat_template, "/a b/#c.jinja");
  const std::string printed = schema_.PrintYaml();
  EXPECT_THAT(printed, HasSubstr("# Sequences in one engine step\nmax-num-seqs: 3\n"));
  EXPECT_THAT(printed, AllOf(Not(HasSubstr("config:")), Not(HasSubstr("print-config"))));

  const std::string path = Write(printed, "printed.yaml");
  ResetToDefaults();
  ASSERT_NE(schema_.PrintYaml(), printed);
  auto applied = schema_.Apply(path, [](std::string_view) { return false; });
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(schema_.PrintYaml(), printed);
  EXPECT_EQ(absl::GetFlag(FLAGS_chat_template), "/a b/#c.jinja");
  EXPECT_EQ(absl::GetFlag(FLAGS_drain_timeout), absl::Milliseconds(1500));
}

TEST_F(ConfigFileTest, DefaultsPrintAsAFileThatLoads) {
  const std::string printed = schema_.PrintYaml();
  EXPECT_THAT(printed, HasSubstr("host: 0.0.0.0\n"));
  EXPECT_THAT(printed, HasSubstr("chat-template: \"\"\n"));
  ASSERT_TRUE(schema_.Apply(Write(printed), [](std::string_view) { return false; }).ok());
  EXPECT_EQ(schema_.PrintYaml(), printed);
}

}  // namespace
}  // namespace muserve::cli
