// Prefix caching through the server: the next turn of a conversation reuses
// the last turn's prompt and reply; outputs are the same with the cache on
// and off; tenants with different salts never share; a request can opt out.
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace muserve::server::testing {
namespace {

constexpr int kBlockSize = 16;

class PrefixCacheTest : public ServerTest {
 protected:
  std::vector<int32_t> Tokenize(const std::string& text) {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_text(text);
    v1::TokenizeResponse response;
    EXPECT_TRUE(stub_->Tokenize(&context, request, &response).ok());
    return {response.token_ids().begin(), response.token_ids().end()};
  }

  static v1::GenerateRequest GreedyIds(const std::vector<int32_t>& ids, int32_t max_tokens,
                                       const std::string& salt = "") {
    v1::GenerateRequest request = Greedy("", max_tokens);
    request.mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
    if (!salt.empty()) request.mutable_options()->mutable_prefix_cache()->set_salt(salt);
    return request;
  }

  int32_t CachedTokens(const Stream& stream) {
    EXPECT_TRUE(stream.status.ok()) << stream.status.error_message();
    return stream.finished ? stream.finished->usage().cached_prompt_tokens() : -1;
  }
};

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(PrefixCacheTest, SecondTurnReusesTheFirstTurnsPromptAndReply) {
  StartServer();
  const std::vector<int32_t> prompt = Tokenize(
      "You are a helpful assistant. Tell me a long story about a lighthouse keeper "
      "who finds a message in a bottle, and what happens next.");
  const Stream first = Run(GreedyIds(prompt, 40));
  EXPECT_EQ(CachedTokens(first), 0);
  ASSERT_EQ(first.token_ids.size(), 40u);
  const std::vector<int32_t> history = Concat(prompt, first.token_ids);
  const std::vector<int32_t> next = Concat(history, Tokenize("And then what did she do?"));
  const Stream second = Run(GreedyIds(next, 20));
  const int32_t cached = CachedTokens(second);
  // Every full block of what turn 1 computed (its prompt and all but the
  // last reply token) is reused; never the new turn's own tokens.
  EXPECT_GE(cached, static_cast<int32_t>(history.size()) - kBlockSize);
  EXPECT_LE(cached, static_cast<int32_t>(history.size()));
  EXPECT_EQ(cached % kBlockSize, 0);
  EXPECT_EQ(second.finished->usage().prompt_tokens(), static_cast<int32_t>(next.size()));
  EXPECT_TRUE(WaitForMetric("muserve_prefix_cache_hits_tokens_total " + std::to_string(cached)));
}

TEST_F(PrefixCacheTest, IdenticalPromptNeverReusesItsLastToken) {
  StartServer();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 3 * kBlockSize; ++i) prompt.push_back(10 + i);  // exactly 3 blocks
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4))), 0);
  // The last block holds the last prompt token, which must be computed again
  // to sample from: two of three blocks are reused.
  const Stream again = Run(GreedyIds(prompt, 4));
  EXPECT_EQ(CachedTokens(again), 2 * kBlockSize);
  EXPECT_EQ(again.token_ids, Run(GreedyIds(prompt, 4)).token_ids);
}

TEST_F(PrefixCacheTest, TenantsWithDifferentSaltsNeverShare) {
  StartServer();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 4 * kBlockSize + 5; ++i) prompt.push_back(20 + i % 100);
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4, "tenant-a"))), 0);
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4, "tenant-b"))), 0);
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4))), 0);  // no salt is a tenant too
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4, "tenant-a"))), 4 * kBlockSize);
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4, "tenant-b"))), 4 * kBlockSize);
}

TEST_F(PrefixCacheTest, ARequestCanBypassTheCache) {
  StartServer();
  std::vector<int32_t> prompt;
  for (int i = 0; i < 4 * kBlockSize; ++i) prompt.push_back(30 + i);
  v1::GenerateRequest bypass = GreedyIds(prompt, 4);
  bypass.mutable_options()->mutable_prefix_cache()->set_enabled(false);
  EXPECT_EQ(CachedTokens(Run(bypass)), 0);
  // It left nothing behind either.
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4))), 0);
  EXPECT_EQ(CachedTokens(Run(bypass)), 0);  // and reads nothing
  EXPECT_EQ(CachedTokens(Run(GreedyIds(prompt, 4))), 3 * kBlockSize);
}

// 64 conversations of 5 turns through Chat, concurrently, on a server with
// the cache and on one without: identical replies, and the cache was used.
TEST_F(PrefixCacheTest, ConversationsAreIdenticalWithTheCacheOnAndOff) {
  constexpr int kConversations = 64;
  constexpr int kTurns = 5;
  auto converse = [&](bool caching) {
    ServerOptions options = TinyServerOptions();
    options.model.loop.enable_prefix_caching = caching;
    StartServer(options);
    std::vector<std::vector<std::string>> replies(kConversations);
    std::vector<int64_t> cached(kConversations, 0);
    std::vector<std::thread> threads;
    for (int c = 0; c < kConversations; ++c) {
      threads.emplace_back([&, c] {
        v1::ChatRequest request;
        auto* system = request.add_messages();
        system->set_role(v1::ChatMessage::ROLE_SYSTEM);
        system->set_content("You are a terse assistant who answers in one line.");
        request.mutable_options()->mutable_sampling()->set_temperature(0);
        request.mutable_options()->mutable_stopping()->set_max_tokens(12 + c % 7);
        for (int turn = 0; turn < kTurns; ++turn) {
          auto* user = request.add_messages();
          user->set_role(v1::ChatMessage::ROLE_USER);
          user->set_content("Conversation " + std::to_string(c) + ", question " +
                            std::to_string(turn) + ": what comes next?");
          const Stream reply = RunChat(request);
          if (!reply.status.ok() || !reply.finished) {
            replies[c].push_back("<error " + reply.status.error_message() + ">");
            return;
          }
          replies[c].push_back(reply.text);
          cached[c] += reply.finished->usage().cached_prompt_tokens();
          auto* assistant = request.add_messages();
          assistant->set_role(v1::ChatMessage::ROLE_ASSISTANT);
          assistant->set_content(reply.text);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    server_.reset();
    return std::make_pair(replies, cached);
  };
  const auto [with_cache, cached_on] = converse(true);
  const auto [without_cache, cached_off] = converse(false);
  int64_t total_cached = 0;
  for (int c = 0; c < kConversations; ++c) {
    ASSERT_EQ(with_cache[c].size(), static_cast<size_t>(kTurns))
        << c << ": " << with_cache[c].back();
    EXPECT_EQ(with_cache[c], without_cache[c]) << c;
    EXPECT_EQ(cached_off[c], 0) << c;
    total_cached += cached_on[c];
  }
  // Every conversation's later turns reuse at least the shared system prompt
  // and its own earlier turns.
  EXPECT_GT(total_cached, int64_t{kConversations} * (kTurns - 1) * kBlockSize);
}

}  // namespace
}  // namespace muserve::server::testing
