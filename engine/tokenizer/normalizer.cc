#include "engine/tokenizer/normalizer.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/tokenizer/pcre_regex.h"
#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->Normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalizationForm form) : form_(form) {}
  std::string Normalize(std::string_view text) const override {
    return tokenizer_internal::Normalize(text, form_);
  }

 private:
  NormalizationForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return ToLowercase(text); }
};

// Prepends a fixed string to non-empty text (Llama 2's "▁").
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    return absl::StrCat(prefix_, AsAbsl(text));
  }

 private:
  std::string prefix_;
};

// Replaces every match of a literal or a regex.
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string literal, std::unique_ptr<PcreRegex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override {
    if (regex_ == nullptr) {
      if (literal_.empty()) return std::string(text);
      return absl::StrReplaceAll(AsAbsl(text), {{literal_, content_}});
    }
    std::string out;
    size_t last = 0;
    for (const auto& [begin, end] : regex_->FindAll(text)) {
      out.append(text.substr(last, begin - last));
      out += content_;
      last = end;
    }
    out.append(text.substr(last));
    return out;
  }

 private:
  std::string literal_;
  std::unique_ptr<PcreRegex> regex_;  // null for a literal pattern
  std::string content_;
};

// Strips Unicode whitespace from either end.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!IsWhitespace(NextCodePoint(text, &next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t pos = start;
        if (!IsWhitespace(NextCodePoint(text, &pos))) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_;
  bool right_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& json,
                                                            const std::string& path) {
  absl::StatusOr<std::string> type = GetType(json, path);
  if (!type.ok()) return type.status();
  if (*type == "Sequence") {
    auto steps = ParseSequenceItems<Normalizer>(json, "normalizers", path, ParseNormalizer);
    if (!steps.ok()) return steps.status();
    return std::make_unique<SequenceNormalizer>(*std::move(steps));
  }
  if (*type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfc);
  if (*type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfd);
  if (*type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfkc);
  if (*type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfkd);
  if (*type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (*type == "Prepend") {
    auto prefix = GetString(json, "prepend", path);
    if (!prefix.ok()) return prefix.status();
    return std::make_unique<PrependNormalizer>(*std::move(prefix));
  }
  if (*type == "Replace") {
    auto pattern = GetPattern(json, "pattern", path);
    if (!pattern.ok()) return pattern.status();
    auto content = GetString(json, "content", path);
    if (!content.ok()) return content.status();
    std::unique_ptr<PcreRegex> regex;
    if (pattern->is_regex) {
      auto compiled = PcreRegex::Compile(pattern->text);
      if (!compiled.ok())
        return FieldError(FieldPath(path, "pattern"), compiled.status().message());
      regex = *std::move(compiled);
    }
    return std::make_unique<ReplaceNormalizer>(pattern->text, std::move(regex),
                                               *std::move(content));
  }
  if (*type == "Strip") {
    auto left = GetBool(json, "strip_left", path, true);
    if (!left.ok()) return left.status();
    auto right = GetBool(json, "strip_right", path, true);
    if (!right.ok()) return right.status();
    return std::make_unique<StripNormalizer>(*left, *right);
  }
  return UnsupportedType(path, *type);
}

}  // namespace muserve::tokenizer_internal
