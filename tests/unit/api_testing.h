// Shared setup of the server/api conversion tests: the demo tokenizer (which
// adds <|begin_of_text|> as BOS) and a model of 1024 tokens of context.
#pragma once

#include <memory>

#include "engine/tokenizer/demo_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "server/api/request_conversion.h"

namespace muserve::server::testing {

// Built once: training the demo BPE takes a moment.
inline const DemoTokenizer& Demo() {
  static const DemoTokenizer* demo = new DemoTokenizer(MakeDemoTokenizer({.vocab_size = 512}));
  return *demo;
}

inline const Tokenizer& DemoTokenizerInstance() {
  static const Tokenizer* tokenizer = [] {
    auto loaded = Tokenizer::FromJson(Demo().json);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded.ok() ? loaded->release() : nullptr;
  }();
  return *tokenizer;
}

inline ModelLimits TestLimits() {
  ModelLimits limits;
  limits.vocab_size = Demo().vocab_size;
  limits.context_len = 1024;
  limits.kv_capacity_tokens = 4096;  // the context is the tighter bound unless a test says
  limits.kv_block_size = 16;
  return limits;
}

}  // namespace muserve::server::testing
