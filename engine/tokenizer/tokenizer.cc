// Loads tokenizer.json and runs `tokenizers`' encode/decode pipeline:
// added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor, and
// ids -> token strings -> decoder.
#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/tokenizer/added_vocabulary.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/json_fields.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/post_processor.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/unicode.h"

namespace muserve {
namespace {

using tokenizer_internal::AddedToken;
using tokenizer_internal::AddedVocabulary;
using tokenizer_internal::BpeModel;
using tokenizer_internal::Decoder;
using tokenizer_internal::FieldError;
using tokenizer_internal::Json;
using tokenizer_internal::Normalizer;
using tokenizer_internal::Piece;
using tokenizer_internal::PostProcessor;
using tokenizer_internal::PreTokenizer;

// Immutable after construction: Encode/Decode may run on many threads.
class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(std::unique_ptr<Normalizer> normalizer, std::unique_ptr<PreTokenizer> pre_tokenizer,
              std::unique_ptr<BpeModel> model, std::unique_ptr<PostProcessor> post_processor,
              std::unique_ptr<Decoder> decoder, std::vector<AddedToken> added_tokens)
      : normalizer_(std::move(normalizer)),
        pre_tokenizer_(std::move(pre_tokenizer)),
        model_(std::move(model)),
        post_processor_(std::move(post_processor)),
        decoder_(std::move(decoder)),
        added_(std::move(added_tokens), normalizer_.get()) {}

  std::vector<TokenId> Encode(std::string_view text, bool add_special_tokens) const override {
    // `tokenizers` only sees valid text; invalid bytes become U+FFFD first.
    std::string sanitized;
    if (!tokenizer_internal::IsValidUtf8(text)) {
      sanitized = tokenizer_internal::LossyUtf8(text);
      text = sanitized;
    }
    std::vector<TokenId> ids;
    std::vector<Piece> pieces;
    for (auto& segment : added_.Split(text, normalizer_.get())) {
      if (segment.id) {
        ids.push_back(*segment.id);
        continue;
      }
      pieces.clear();
      pieces.push_back(std::move(segment.text));
      if (pre_tokenizer_) pre_tokenizer_->PreTokenize(&pieces);
      for (const Piece& piece : pieces) model_->Tokenize(piece.text, &ids);
    }
    if (add_special_tokens && post_processor_) post_processor_->Apply(&ids);
    return ids;
  }

  std::string Decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const TokenId id : ids) {
      const std::string* token = nullptr;
      if (const AddedToken* added = added_.FindById(id)) {
        token = &added->decoded;
      } else {
        token = model_->IdToToken(id);
      }
      if (token == nullptr) continue;  // unknown ids are dropped, as in `tokenizers`
      if (skip_special_tokens && added_.IsSpecialContent(*token)) continue;
      tokens.push_back(*token);
    }
    if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
    decoder_->DecodeChain(&tokens);
    return absl::StrJoin(tokens, "");
  }

  int32_t vocab_size() const override { return std::max(model_->max_id(), added_.max_id()) + 1; }

  std::optional<TokenId> TokenToId(std::string_view token) const override {
    if (auto id = added_.FindByContent(token)) return id;
    return model_->TokenToId(token);
  }

  std::optional<std::string> IdToToken(TokenId id) const override {
    if (const AddedToken* added = added_.FindById(id)) return added->content;
    if (const std::string* token = model_->IdToToken(id)) return *token;
    return std::nullopt;
  }

  bool IsSpecial(TokenId id) const override {
    const AddedToken* added = added_.FindById(id);
    return added != nullptr && added->special;
  }

 private:
  std::unique_ptr<Normalizer> normalizer_;       // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer_;  // may be null
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;  // may be null
  std::unique_ptr<Decoder> decoder_;               // may be null
  AddedVocabulary added_;
};

// `model_tokens` is the model vocabulary's size, for the id bound.
absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const Json& root, size_t model_tokens) {
  std::vector<AddedToken> tokens;
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return tokens;
  if (!it->is_array()) return FieldError("added_tokens", "must be an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& entry = (*it)[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object()) return FieldError(path, "must be an object");
    auto id = entry.find("id");
    // Unsigned values past INT64_MAX read back negative, so are rejected too.
    if (id == entry.end() || !id->is_number_integer() || id->get<int64_t>() < 0) {
      return FieldError(path + ".id", "must be a non-negative integer");
    }
    // Same bound as the model vocabulary's (see BpeModel::kMaxIdHoles).
    const int64_t id_limit =
        static_cast<int64_t>(model_tokens + it->size()) + BpeModel::kMaxIdHoles;
    if (id->get<int64_t>() >= id_limit) {
      return FieldError(path + ".id", absl::StrCat("is ", id->dump(), ", too far past the ",
                                                   model_tokens + it->size(), " tokens"));
    }
    AddedToken token;
    token.id = static_cast<int32_t>(id->get<int64_t>());
    auto content = tokenizer_internal::GetString(entry, "content", path);
    if (!content.ok()) return content.status();
    token.content = *std::move(content);
    auto special = tokenizer_internal::GetBool(entry, "special", path, false);
    if (!special.ok()) return special.status();
    token.special = *special;
    // Defaults as in `tokenizers`: special tokens are not normalized.
    struct Flag {
      const char* key;
      bool* value;
      bool default_value;
    };
    for (const Flag& flag :
         {Flag{"single_word", &token.single_word, false}, Flag{"lstrip", &token.lstrip, false},
          Flag{"rstrip", &token.rstrip, false},
          Flag{"normalized", &token.normalized, !token.special}}) {
      auto value = tokenizer_internal::GetBool(entry, flag.key, path, flag.default_value);
      if (!value.ok()) return value.status();
      *flag.value = *value;
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const Json& root) {
  if (!root.is_object()) return FieldError("(root)", "must be an object");
  auto model_json = root.find("model");
  if (model_json == root.end()) return FieldError("model", "is missing");
  auto model = BpeModel::Parse(*model_json, "model");
  if (!model.ok()) return model.status();

  std::unique_ptr<Normalizer> normalizer;
  if (auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
    auto parsed = tokenizer_internal::ParseNormalizer(*it, "normalizer");
    if (!parsed.ok()) return parsed.status();
    normalizer = *std::move(parsed);
  }
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  if (auto it = root.find("pre_tokenizer"); it != root.end() && !it->is_null()) {
    auto parsed = tokenizer_internal::ParsePreTokenizer(*it, "pre_tokenizer");
    if (!parsed.ok()) return parsed.status();
    pre_tokenizer = *std::move(parsed);
  }
  std::unique_ptr<Decoder> decoder;
  if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
    auto parsed = tokenizer_internal::ParseDecoder(*it, "decoder");
    if (!parsed.ok()) return parsed.status();
    decoder = *std::move(parsed);
  }
  auto added = ParseAddedTokens(root, (*model)->num_tokens());
  if (!added.ok()) return added.status();
  // After the vocabulary and added tokens, so the template's ids can be checked.
  std::unique_ptr<PostProcessor> post_processor;
  if (auto it = root.find("post_processor"); it != root.end() && !it->is_null()) {
    const BpeModel& bpe = **model;
    const std::vector<AddedToken>& added_tokens = *added;
    auto is_known_id = [&bpe, &added_tokens](int32_t id) {
      if (bpe.IdToToken(id) != nullptr) return true;
      return std::any_of(added_tokens.begin(), added_tokens.end(),
                         [id](const AddedToken& token) { return token.id == id; });
    };
    auto parsed = tokenizer_internal::ParsePostProcessor(*it, "post_processor", is_known_id);
    if (!parsed.ok()) return parsed.status();
    post_processor = *std::move(parsed);
  }
  // truncation and padding are ignored: the server enforces context limits.
  return std::make_unique<HfTokenizer>(std::move(normalizer), std::move(pre_tokenizer),
                                       *std::move(model), std::move(post_processor),
                                       std::move(decoder), *std::move(added));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text,
                                                               std::string_view file_name) {
  const Json root = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(file_name), ": not valid JSON"));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Build(root);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(AsAbsl(file_name), ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot be opened"));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read failed"));
  return FromJson(contents.str(), path.string());
}

bool IsValidUtf8(std::string_view bytes) { return tokenizer_internal::IsValidUtf8(bytes); }

}  // namespace muserve
