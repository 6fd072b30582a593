// Trains the demo tokenizer: classic BPE training (most frequent adjacent
// pair first) over the words that the Llama 3 split regex cuts from the
// built-in corpus, in the byte-level alphabet. Deterministic: words are kept
// in sorted order and ties between equally frequent pairs go to the smaller
// (left id, right id).
#include "engine/tokenizer/demo_tokenizer.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/demo_corpus.h"
#include "engine/tokenizer/pcre_regex.h"
#include "nlohmann/json.hpp"

namespace muserve {
namespace {

using tokenizer_internal::BytesToByteLevel;
using tokenizer_internal::PcreRegex;

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kSpecialTokens[] = {"<|begin_of_text|>", "<|end_of_text|>",
                                          "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
constexpr int32_t kNumSpecial = 5;
// Pairs seen once still merge (whole rare words become tokens), which lets
// the small corpus reach a vocabulary of about 1,600.
constexpr int32_t kMinPairCount = 1;

struct Word {
  std::vector<int32_t> symbols;
  int64_t count = 0;
};

std::vector<Word> CorpusWords() {
  // The pattern is a constant known to compile.
  auto regex = PcreRegex::Compile(kLlama3Pattern);
  const std::string_view corpus = tokenizer_internal::DemoCorpus();
  std::map<std::string, int64_t> counts;
  for (const auto& [begin, end] : (*regex)->FindAll(corpus)) {
    ++counts[std::string(corpus.substr(begin, end - begin))];
  }
  std::vector<Word> words;
  for (const auto& [text, count] : counts) {
    Word word;
    word.count = count;
    for (const char c : text) word.symbols.push_back(static_cast<unsigned char>(c));
    words.push_back(std::move(word));
  }
  return words;
}

void ApplyMerge(int32_t left, int32_t right, int32_t merged, std::vector<Word>* words) {
  for (Word& word : *words) {
    std::vector<int32_t>& s = word.symbols;
    size_t out = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
        s[out++] = merged;
        ++i;
      } else {
        s[out++] = s[i];
      }
    }
    s.resize(out);
  }
}

}  // namespace

DemoTokenizer MakeDemoTokenizer(const DemoTokenizerSpec& spec) {
  const int32_t max_tokens = std::max(spec.vocab_size, 256 + kNumSpecial) - kNumSpecial;
  std::vector<std::string> tokens;  // id -> byte-level token text
  absl::flat_hash_map<std::string, int32_t> ids;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(BytesToByteLevel(std::string(1, static_cast<char>(b))));
    ids[tokens.back()] = b;
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<Word> words = CorpusWords();
  while (static_cast<int32_t>(tokens.size()) < max_tokens) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pair_counts;
    for (const Word& word : words) {
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        pair_counts[{word.symbols[i], word.symbols[i + 1]}] += word.count;
      }
    }
    // std::map iterates pairs in increasing order, so the first maximum wins.
    auto best = pair_counts.end();
    for (auto it = pair_counts.begin(); it != pair_counts.end(); ++it) {
      if (best == pair_counts.end() || it->second > best->second) best = it;
    }
    if (best == pair_counts.end() || best->second < kMinPairCount) break;
    const auto [left, right] = best->first;
    const std::string text = tokens[left] + tokens[right];
    auto [it, inserted] = ids.try_emplace(text, static_cast<int32_t>(tokens.size()));
    if (inserted) tokens.push_back(text);
    merges.emplace_back(left, right);
    ApplyMerge(left, right, it->second, &words);
  }

  const auto first_special = static_cast<int32_t>(tokens.size());
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (const auto& [left, right] : merges) merge_list.push_back({tokens[left], tokens[right]});
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (int32_t i = 0; i < kNumSpecial; ++i) {
    added.push_back({{"id", first_special + i},
                     {"content", kSpecialTokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const std::string bos = kSpecialTokens[0];
  nlohmann::ordered_json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = added;
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"},
                              {"pattern", {{"Regex", kLlama3Pattern}}},
                              {"behavior", "Isolated"},
                              {"invert", false}},
                             {{"type", "ByteLevel"},
                              {"add_prefix_space", false},
                              {"trim_offsets", true},
                              {"use_regex", false}}}}};
  root["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"},
         {"add_prefix_space", true},
         {"trim_offsets", false},
         {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"pair",
          {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
           {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
         {"special_tokens",
          {{bos, {{"id", bos}, {"ids", {first_special}}, {"tokens", {bos}}}}}}}}}};
  root["decoder"] = {{"type", "ByteLevel"},
                     {"add_prefix_space", true},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", true},
                   {"vocab", vocab},
                   {"merges", merge_list}};

  DemoTokenizer result;
  result.json = root.dump(1);
  result.vocab_size = first_special + kNumSpecial;
  result.begin_of_text_id = first_special;
  result.end_of_text_id = first_special + 1;
  result.start_header_id = first_special + 2;
  result.end_header_id = first_special + 3;
  result.eot_id = first_special + 4;
  return result;
}

std::string MakeDemoTokenizerJson(const DemoTokenizerSpec& spec) {
  return MakeDemoTokenizer(spec).json;
}

}  // namespace muserve
