// End-to-end tests of the `muserve` executable: make-model, then generate.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cli/offline_generation.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/subprocess.h"

namespace muserve {
namespace {

using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new TempDir();
    const ProcessResult made = RunProcess(
        {MUSERVE_BINARY, "make-model", "--out", ModelDir(), "--preset", "tiny", "--seed", "3"});
    ASSERT_EQ(made.exit_code, 0) << made.stderr_text;
  }
  static void TearDownTestSuite() {
    delete model_dir_;
    model_dir_ = nullptr;
  }
  static std::string ModelDir() { return (model_dir_->path() / "model").string(); }

  // Greedy generation options on the suite's model.
  static cli::OfflineGenerationOptions Greedy(std::string prompt, int32_t max_tokens) {
    cli::OfflineGenerationOptions options;
    options.model_dir = ModelDir();
    options.prompt = std::move(prompt);
    options.max_tokens = max_tokens;
    options.sampling.temperature = 0;
    return options;
  }

  static TempDir* model_dir_;
};
TempDir* CliTest::model_dir_ = nullptr;

TEST_F(CliTest, GreedyGenerationIsDeterministicAcrossRunsAndThreadCounts) {
  const std::vector<std::string> base = {MUSERVE_BINARY, "generate", "--model",    ModelDir(),
                                         "--max-tokens", "12",       "Hello world"};
  std::vector<std::string> one_thread = base, two_threads = base;
  one_thread.insert(one_thread.end() - 1, {"--threads", "1"});
  two_threads.insert(two_threads.end() - 1, {"--threads=2"});
  const ProcessResult a = RunProcess(one_thread);
  const ProcessResult b = RunProcess(two_threads);
  ASSERT_EQ(a.exit_code, 0) << a.stderr_text;
  ASSERT_EQ(b.exit_code, 0) << b.stderr_text;
  EXPECT_EQ(a.stdout_text, b.stdout_text);
  EXPECT_THAT(a.stderr_text, HasSubstr("prompt tokens"));

  // The executable prints exactly the text the library generates, then a newline.
  cli::OfflineGenerationOptions options = Greedy("Hello world", 12);
  auto result = cli::RunOfflineGeneration(options, [](std::string_view) {});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_FALSE(result->text.empty());
  EXPECT_EQ(a.stdout_text, result->text + "\n");
}

TEST_F(CliTest, StreamedTextEqualsDecodingTheGeneratedTokens) {
  cli::OfflineGenerationOptions options;
  options.model_dir = ModelDir();
  options.prompt = "The quick brown fox";
  options.max_tokens = 24;
  options.sampling.temperature = 1.0f;
  options.sampling.seed = 11;
  std::string streamed;
  auto result = cli::RunOfflineGeneration(options, [&](std::string_view t) { streamed += t; });
  ASSERT_TRUE(result.ok()) << result.status();
  auto tokenizer = Tokenizer::FromFile(options.model_dir / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(streamed, result->text);
  EXPECT_EQ(streamed, (*tokenizer)->Decode(result->output_ids, /*skip_special_tokens=*/true));
  EXPECT_EQ(result->prompt_ids, (*tokenizer)->Encode(options.prompt, true));
  // With this model and seed no end-of-sequence token comes within 24 tokens.
  EXPECT_FALSE(result->stopped_on_eos);
  EXPECT_EQ(result->output_ids.size(), 24u);
  EXPECT_FALSE(streamed.empty());
}

TEST_F(CliTest, ChunkedPrefillGivesTheSameTokensAsOnePass) {
  cli::OfflineGenerationOptions options =
      Greedy("A longer prompt that spans several prefill chunks of a few tokens each.", 10);
  auto whole = cli::RunOfflineGeneration(options, [](std::string_view) {});
  options.prefill_chunk = 3;
  options.block_size = 1;
  auto chunked = cli::RunOfflineGeneration(options, [](std::string_view) {});
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  EXPECT_EQ(whole->output_ids.size(), 10u);
  EXPECT_EQ(whole->output_ids, chunked->output_ids);
}

TEST_F(CliTest, ChatPromptIsRenderedThroughTheTemplate) {
  cli::OfflineGenerationOptions options = Greedy("Hi", 4);
  options.chat = true;
  options.system_prompt = "Be brief.";
  auto result = cli::RunOfflineGeneration(options, [](std::string_view) {});
  ASSERT_TRUE(result.ok()) << result.status();
  auto tokenizer = Tokenizer::FromFile(options.model_dir / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok());
  const std::string prompt = (*tokenizer)->Decode(result->prompt_ids, false);
  EXPECT_THAT(prompt, HasSubstr("<|start_header_id|>system<|end_header_id|>"));
  EXPECT_THAT(prompt, HasSubstr("Be brief."));
  EXPECT_THAT(prompt, HasSubstr("<|start_header_id|>user<|end_header_id|>"));
  EXPECT_THAT(prompt, ::testing::EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n"));
}

// Copies the suite's model into `dir` with generation_config.json replaced.
std::filesystem::path CopyModelWithGenerationConfig(const std::string& model_dir,
                                                    const std::filesystem::path& dir,
                                                    const std::string& generation_config) {
  const std::filesystem::path copy = dir / "model";
  std::filesystem::copy(model_dir, copy);
  std::ofstream(copy / "generation_config.json") << generation_config;
  return copy;
}

TEST_F(CliTest, GenerationStopsAtAnEosIdFromGenerationConfig) {
  cli::OfflineGenerationOptions options = Greedy("Hello world", 12);
  auto free_run = cli::RunOfflineGeneration(options, [](std::string_view) {});
  ASSERT_TRUE(free_run.ok()) << free_run.status();
  ASSERT_GE(free_run->output_ids.size(), 4u);
  ASSERT_FALSE(free_run->stopped_on_eos);

  // Declaring the fourth greedy token an end-of-sequence id stops right before it.
  TempDir dir;
  options.model_dir = CopyModelWithGenerationConfig(
      ModelDir(), dir.path(),
      "{\"eos_token_id\": [" + std::to_string(free_run->output_ids[3]) + "]}");
  auto stopped = cli::RunOfflineGeneration(options, [](std::string_view) {});
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->stopped_on_eos);
  const std::vector<TokenId> expected(free_run->output_ids.begin(),
                                      free_run->output_ids.begin() + 3);
  EXPECT_EQ(stopped->output_ids, expected);
}

TEST_F(CliTest, MalformedGenerationConfigIsAnErrorNamingTheField) {
  TempDir dir;
  cli::OfflineGenerationOptions options;
  options.model_dir =
      CopyModelWithGenerationConfig(ModelDir(), dir.path(), "{\"eos_token_id\": \"two\"}");
  options.prompt = "x";
  auto result = cli::RunOfflineGeneration(options, [](std::string_view) {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("generation_config.json"));
  EXPECT_THAT(result.status().message(), HasSubstr("eos_token_id"));
}

TEST_F(CliTest, MissingModelDirectoryIsAnErrorNamingConfigJson) {
  TempDir empty;
  const ProcessResult r = RunProcess(
      {MUSERVE_BINARY, "generate", "--model", empty.path().string(), "--max-tokens", "2", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.stderr_text, HasSubstr("config.json"));
}

TEST_F(CliTest, FlagOfAnotherCommandIsRejected) {
  const ProcessResult r =
      RunProcess({MUSERVE_BINARY, "generate", "--model", ModelDir(), "--preset", "tiny", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("unknown flag --preset"));
}

TEST_F(CliTest, BadFlagValuesAreErrorsNamingTheFlag) {
  const ProcessResult tokens =
      RunProcess({MUSERVE_BINARY, "generate", "--model", ModelDir(), "--max-tokens", "0", "x"});
  EXPECT_EQ(tokens.exit_code, 1);
  EXPECT_THAT(tokens.stderr_text, HasSubstr("--max-tokens"));
  const ProcessResult temperature =
      RunProcess({MUSERVE_BINARY, "generate", "--model", ModelDir(), "--temperature=-1", "x"});
  EXPECT_EQ(temperature.exit_code, 1);
  EXPECT_THAT(temperature.stderr_text, HasSubstr("temperature"));
  const ProcessResult dtype =
      RunProcess({MUSERVE_BINARY, "make-model", "--out", "/tmp/unused", "--dtype", "f8"});
  EXPECT_EQ(dtype.exit_code, 2);
  EXPECT_THAT(dtype.stderr_text, HasSubstr("--dtype"));
}

TEST_F(CliTest, UnknownCommandPrintsUsage) {
  const ProcessResult r = RunProcess({MUSERVE_BINARY, "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("generate"));
  EXPECT_THAT(r.stderr_text, HasSubstr("make-model"));
}

}  // namespace
}  // namespace muserve
