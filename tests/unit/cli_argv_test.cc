#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cli/argv.h"

namespace muserve::cli {
namespace {

using ::testing::ElementsAre;

TEST(NormalizeFlagNamesTest, DashedLongFlagNamesBecomeUnderscored) {
  EXPECT_THAT(NormalizeFlagNames({"muserve", "--max-tokens=5", "--block-size", "16"}),
              ElementsAre("muserve", "--max_tokens=5", "--block_size", "16"));
}

TEST(NormalizeFlagNamesTest, ValuesAndPositionalArgumentsAreUntouched) {
  EXPECT_THAT(NormalizeFlagNames({"x", "--system=be-brief", "a-b", "-v", "--chat-template=/a-b.j"}),
              ElementsAre("x", "--system=be-brief", "a-b", "-v", "--chat_template=/a-b.j"));
}

TEST(NormalizeFlagNamesTest, NothingAfterTheTerminatorChanges) {
  EXPECT_THAT(NormalizeFlagNames({"x", "--max-tokens", "3", "--", "--not-a-flag"}),
              ElementsAre("x", "--max_tokens", "3", "--", "--not-a-flag"));
}

}  // namespace
}  // namespace muserve::cli
