// The demo model's tokenizer: a byte-level BPE (Llama 3's split pattern)
// trained deterministically on a built-in English/code corpus, with Llama 3
// style special tokens. Emitted as tokenizer.json text that Hugging Face
// `tokenizers` loads unchanged (tests/reference/make_tokenizer_fixtures.py
// checks that it also tokenizes identically).
#pragma once

#include <cstdint>
#include <string>

namespace muserve {

struct DemoTokenizerSpec {
  // Total vocabulary including the 256 byte tokens, merges and special tokens.
  // An upper bound: training stops early when the built-in corpus has no pair
  // left to merge (about 1,600 tokens in all), and the result is
  // then simply smaller. Values below 261 (bytes + specials) are raised to 261.
  int32_t vocab_size = 512;
};

// Returns tokenizer.json text. Special tokens (ids at the end of the
// vocabulary): <|begin_of_text|>, <|end_of_text|>, <|start_header_id|>,
// <|end_header_id|>, <|eot_id|>.
std::string MakeDemoTokenizerJson(const DemoTokenizerSpec& spec);

// The same tokenizer with its real size and special-token ids.
struct DemoTokenizer {
  std::string json;
  int32_t vocab_size = 0;  // actual size: <= spec.vocab_size (or 261)
  int32_t begin_of_text_id = 0;
  int32_t end_of_text_id = 0;
  int32_t start_header_id = 0;
  int32_t end_header_id = 0;
  int32_t eot_id = 0;  // = vocab_size - 1
};
DemoTokenizer MakeDemoTokenizer(const DemoTokenizerSpec& spec);

}  // namespace muserve
