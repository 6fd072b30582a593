#include "engine/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/pcre_regex.h"
#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

// GPT-2's split regex, used by ByteLevel with use_regex.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

using Span = std::pair<size_t, size_t>;

// `tokenizers`' NormalizedString::split: turns matches into the covering list
// of (span, is_match) and combines them per `behavior`.
std::vector<Span> SplitSpans(size_t length, const std::vector<Span>& matches,
                             SplitBehavior behavior, bool invert) {
  std::vector<std::pair<Span, bool>> all;
  if (length == 0) {
    all.push_back({{0, 0}, false});
  } else {
    size_t prev = 0;
    for (const Span& m : matches) {
      if (prev != m.first) all.push_back({{prev, m.first}, false});
      all.push_back({m, true});
      prev = m.second;
    }
    if (prev != length) all.push_back({{prev, length}, false});
  }
  if (invert) {
    for (auto& entry : all) entry.second = !entry.second;
  }
  std::vector<Span> out;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& [span, is_match] : all) {
        if (!is_match) out.push_back(span);
      }
      break;
    case SplitBehavior::kIsolated:
      for (const auto& entry : all) out.push_back(entry.first);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& [span, is_match] : all) {
        if (is_match && !previous_match && !out.empty()) {
          out.back().second = span.second;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        if (it->second && !previous_match && !out.empty()) {
          out.back().first = it->first.first;
        } else {
          out.push_back(it->first);
        }
        previous_match = it->second;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& [span, is_match] : all) {
        if (is_match == previous_match && !out.empty()) {
          out.back().second = span.second;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      break;
    }
  }
  return out;
}

void AppendSplit(const Piece& piece, const std::vector<Span>& spans, std::vector<Piece>* out) {
  for (const auto& [begin, end] : spans) {
    if (end <= begin) continue;
    out->push_back(Piece{piece.text.substr(begin, end - begin), piece.at_origin && begin == 0});
  }
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    for (const auto& step : steps_) step->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<PcreRegex> regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    for (const Piece& piece : *pieces) {
      // An empty literal pattern never matches (as in `tokenizers`).
      const std::vector<Span> matches = regex_ ? regex_->FindAll(piece.text) : std::vector<Span>();
      AppendSplit(piece, SplitSpans(piece.text.size(), matches, behavior_, invert_), &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::unique_ptr<PcreRegex> regex_;  // null for an empty literal
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<PcreRegex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    std::vector<Piece> split;
    for (Piece& piece : *pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) {
        piece.text.insert(0, " ");
      }
      if (regex_ == nullptr) {
        if (!piece.text.empty()) split.push_back(std::move(piece));
        continue;
      }
      AppendSplit(piece,
                  SplitSpans(piece.text.size(), regex_->FindAll(piece.text),
                             SplitBehavior::kIsolated, false),
                  &split);
    }
    for (Piece& piece : split) piece.text = BytesToByteLevel(piece.text);
    *pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<PcreRegex> regex_;  // null when use_regex is false
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void PreTokenize(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    for (Piece& piece : *pieces) {
      std::string text = absl::StrReplaceAll(piece.text, {{" ", replacement_}});
      const bool starts_with_replacement = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts_with_replacement && (scheme_ == PrependScheme::kAlways ||
                                       (scheme_ == PrependScheme::kFirst && piece.at_origin))) {
        text.insert(0, replacement_);
      }
      Piece transformed{std::move(text), piece.at_origin};
      if (!split_) {
        if (!transformed.text.empty()) out.push_back(std::move(transformed));
        continue;
      }
      std::vector<Span> matches;
      for (size_t pos = transformed.text.find(replacement_); pos != std::string::npos;
           pos = transformed.text.find(replacement_, pos + replacement_.size())) {
        matches.push_back({pos, pos + replacement_.size()});
      }
      AppendSplit(
          transformed,
          SplitSpans(transformed.text.size(), matches, SplitBehavior::kMergedWithNext, false),
          &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const Json& json, const std::string& path) {
  auto name = GetString(json, "behavior", path);
  if (!name.ok()) return name.status();
  if (*name == "Removed") return SplitBehavior::kRemoved;
  if (*name == "Isolated") return SplitBehavior::kIsolated;
  if (*name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (*name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (*name == "Contiguous") return SplitBehavior::kContiguous;
  return FieldError(FieldPath(path, "behavior"), absl::StrCat("'", *name, "' is not supported"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseSplit(const Json& json,
                                                         const std::string& path) {
  auto pattern = GetPattern(json, "pattern", path);
  if (!pattern.ok()) return pattern.status();
  auto behavior = ParseBehavior(json, path);
  if (!behavior.ok()) return behavior.status();
  auto invert = GetBool(json, "invert", path, false);
  if (!invert.ok()) return invert.status();
  std::unique_ptr<PcreRegex> regex;
  if (pattern->is_regex || !pattern->text.empty()) {
    auto compiled =
        pattern->is_regex ? PcreRegex::Compile(pattern->text) : PcreRegex::Literal(pattern->text);
    if (!compiled.ok()) return FieldError(FieldPath(path, "pattern"), compiled.status().message());
    regex = *std::move(compiled);
  }
  return std::make_unique<SplitPreTokenizer>(std::move(regex), *behavior, *invert);
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParseMetaspace(const Json& json,
                                                             const std::string& path) {
  auto replacement = GetString(json, "replacement", path);
  if (!replacement.ok()) return replacement.status();
  if (replacement->empty()) return FieldError(FieldPath(path, "replacement"), "must not be empty");
  auto scheme_name = GetOptionalString(json, "prepend_scheme", path);
  if (!scheme_name.ok()) return scheme_name.status();
  PrependScheme scheme = PrependScheme::kAlways;
  if (scheme_name->has_value()) {
    if (**scheme_name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (**scheme_name == "never") {
      scheme = PrependScheme::kNever;
    } else if (**scheme_name != "always") {
      return FieldError(FieldPath(path, "prepend_scheme"),
                        absl::StrCat("'", **scheme_name, "' is not supported"));
    }
  } else {
    // Files older than prepend_scheme carry add_prefix_space instead.
    auto add_prefix_space = GetBool(json, "add_prefix_space", path, true);
    if (!add_prefix_space.ok()) return add_prefix_space.status();
    scheme = *add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  auto split = GetBool(json, "split", path, true);
  if (!split.ok()) return split.status();
  return std::make_unique<MetaspacePreTokenizer>(*std::move(replacement), scheme, *split);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& json,
                                                                const std::string& path) {
  absl::StatusOr<std::string> type = GetType(json, path);
  if (!type.ok()) return type.status();
  if (*type == "Sequence") {
    auto steps = ParseSequenceItems<PreTokenizer>(json, "pretokenizers", path, ParsePreTokenizer);
    if (!steps.ok()) return steps.status();
    return std::make_unique<SequencePreTokenizer>(*std::move(steps));
  }
  if (*type == "Split") return ParseSplit(json, path);
  if (*type == "ByteLevel") {
    auto add_prefix_space = GetBool(json, "add_prefix_space", path, true);
    if (!add_prefix_space.ok()) return add_prefix_space.status();
    auto use_regex = GetBool(json, "use_regex", path, true);
    if (!use_regex.ok()) return use_regex.status();
    std::unique_ptr<PcreRegex> regex;
    if (*use_regex) {
      auto compiled = PcreRegex::Compile(kGpt2Pattern);
      if (!compiled.ok()) return compiled.status();
      regex = *std::move(compiled);
    }
    return std::make_unique<ByteLevelPreTokenizer>(*add_prefix_space, std::move(regex));
  }
  if (*type == "Metaspace") return ParseMetaspace(json, path);
  if (*type == "Digits") {
    auto individual = GetBool(json, "individual_digits", path, false);
    if (!individual.ok()) return individual.status();
    auto regex = PcreRegex::Compile(*individual ? R"(\p{N})" : R"(\p{N}+)");
    if (!regex.ok()) return regex.status();
    return std::make_unique<SplitPreTokenizer>(*std::move(regex), SplitBehavior::kIsolated, false);
  }
  return UnsupportedType(path, *type);
}

}  // namespace muserve::tokenizer_internal
