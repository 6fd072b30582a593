#include "engine/tokenizer/bpe_model.h"

#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const Json& merge,
                                                               const std::string& path) {
  if (merge.is_string()) {
    const std::string& text = merge.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      return FieldError(path, absl::StrCat("'", text, "' is not two tokens separated by a space"));
    }
    return std::make_pair(text.substr(0, space), text.substr(space + 1));
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return std::make_pair(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  return FieldError(path, "must be \"a b\" or [\"a\", \"b\"]");
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Parse(const Json& json,
                                                          const std::string& path) {
  if (!json.is_object()) return FieldError(path, "must be an object");
  // `tokenizers` accepts a BPE model without "type" (untagged); so do we.
  if (auto type = json.find("type"); type != json.end()) {
    if (!type->is_string()) return FieldError(FieldPath(path, "type"), "must be a string");
    if (type->get<std::string>() != "BPE") return UnsupportedType(path, type->get<std::string>());
  }
  if (auto dropout = json.find("dropout");
      dropout != json.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return FieldError(FieldPath(path, "dropout"), "is not supported (must be null)");
  }
  for (const char* field : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto value = GetOptionalString(json, field, path);
    if (!value.ok()) return value.status();
    if (value->has_value() && !(*value)->empty()) {
      return FieldError(FieldPath(path, field), "is not supported (must be null)");
    }
  }
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  auto fuse_unk = GetBool(json, "fuse_unk", path, false);
  if (!fuse_unk.ok()) return fuse_unk.status();
  auto byte_fallback = GetBool(json, "byte_fallback", path, false);
  if (!byte_fallback.ok()) return byte_fallback.status();
  auto ignore_merges = GetBool(json, "ignore_merges", path, false);
  if (!ignore_merges.ok()) return ignore_merges.status();
  model->fuse_unk_ = *fuse_unk;
  model->byte_fallback_ = *byte_fallback;
  model->ignore_merges_ = *ignore_merges;

  auto vocab = json.find("vocab");
  if (vocab == json.end() || !vocab->is_object()) {
    return FieldError(FieldPath(path, "vocab"), "must be an object of token -> id");
  }
  const int64_t id_limit = static_cast<int64_t>(vocab->size()) + kMaxIdHoles;
  for (const auto& [token, id_json] : vocab->items()) {
    // Unsigned values past INT64_MAX read back negative, so are rejected too.
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0) {
      return FieldError(FieldPath(path, "vocab"),
                        absl::StrCat("entry '", token, "' must have a non-negative integer id"));
    }
    if (id_json.get<int64_t>() >= id_limit) {
      return FieldError(FieldPath(path, "vocab"),
                        absl::StrCat("entry '", token, "' has id ", id_json.dump(),
                                     ", too far past the ", vocab->size(), " entries"));
    }
    const auto id = static_cast<int32_t>(id_json.get<int64_t>());
    model->vocab_[token] = id;
    if (static_cast<size_t>(id) >= model->id_to_token_.size()) {
      model->id_to_token_.resize(static_cast<size_t>(id) + 1);
    }
    model->id_to_token_[static_cast<size_t>(id)] = token;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = model->vocab_.find(absl::StrFormat("<0x%02X>", b));
    model->byte_ids_[b] = it == model->vocab_.end() ? -1 : it->second;
  }

  auto unk = GetOptionalString(json, "unk_token", path);
  if (!unk.ok()) return unk.status();
  if (unk->has_value()) {
    auto it = model->vocab_.find(**unk);
    if (it == model->vocab_.end()) {
      return FieldError(FieldPath(path, "unk_token"),
                        absl::StrCat("'", **unk, "' is not in the vocabulary"));
    }
    model->unk_id_ = it->second;
  }

  auto merges = json.find("merges");
  if (merges == json.end() || !merges->is_array()) {
    return FieldError(FieldPath(path, "merges"), "must be an array");
  }
  model->merges_.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const std::string merge_path = absl::StrCat(path, ".merges[", rank, "]");
    auto pair = ParseMerge((*merges)[rank], merge_path);
    if (!pair.ok()) return pair.status();
    auto left = model->vocab_.find(pair->first);
    auto right = model->vocab_.find(pair->second);
    auto merged = model->vocab_.find(pair->first + pair->second);
    if (left == model->vocab_.end() || right == model->vocab_.end() ||
        merged == model->vocab_.end()) {
      return FieldError(merge_path, "refers to a token that is not in the vocabulary");
    }
    model->merges_[PairKey(left->second, right->second)] =
        MergeTarget{static_cast<int32_t>(rank), merged->second};
  }
  return model;
}

void BpeModel::InitialSymbols(std::string_view piece, std::vector<int32_t>* symbols) const {
  std::optional<int32_t> pending_unk;  // unk waiting to be fused with the next one
  size_t pos = 0;
  while (pos < piece.size()) {
    const size_t start = pos;
    NextCodePoint(piece, &pos);
    const std::string_view ch = piece.substr(start, pos - start);
    if (auto it = vocab_.find(AsAbsl(ch)); it != vocab_.end()) {
      if (pending_unk) symbols->push_back(*std::exchange(pending_unk, std::nullopt));
      symbols->push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (const char c : ch)
        all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes) {
        // As in `tokenizers`, a pending fused unk is not flushed here.
        for (const char c : ch) symbols->push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (!unk_id_) continue;
    if (pending_unk && !fuse_unk_) symbols->push_back(*pending_unk);
    pending_unk = unk_id_;
  }
  if (pending_unk) symbols->push_back(*pending_unk);
}

void BpeModel::Tokenize(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(AsAbsl(piece)); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  InitialSymbols(piece, &symbols);
  const int n = static_cast<int>(symbols.size());
  if (n < 2) {
    ids->insert(ids->end(), symbols.begin(), symbols.end());
    return;
  }
  // Linked list over `symbols`; removed[i] marks a symbol merged into its left.
  std::vector<int> prev(n), next(n);
  std::vector<bool> removed(n, false);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push_pair = [&](int left) {
    const int right = next[left];
    if (right < 0) return;
    auto it = merges_.find(PairKey(symbols[left], symbols[right]));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (removed[top.pos] || next[top.pos] < 0) continue;
    const int right = next[top.pos];
    // Skip entries made stale by an earlier merge of either symbol.
    auto it = merges_.find(PairKey(symbols[top.pos], symbols[right]));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    symbols[top.pos] = top.new_id;
    removed[right] = true;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) push_pair(prev[top.pos]);
    push_pair(top.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) ids->push_back(symbols[i]);
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AsAbsl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  const auto& token = id_to_token_[static_cast<size_t>(id)];
  return token ? &*token : nullptr;
}

}  // namespace muserve::tokenizer_internal
