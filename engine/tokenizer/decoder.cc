#include "engine/tokenizer/decoder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/pcre_regex.h"
#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Maps byte-level characters back to bytes; a token with any unmapped
// character contributes its raw UTF-8 instead. Produces one lossy string.
class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& token : *tokens) {
      const size_t mark = bytes.size();
      bool all_mapped = true;
      for (size_t pos = 0; pos < token.size() && all_mapped;) {
        const auto byte = ByteLevelCharToByte(NextCodePoint(token, &pos));
        if (byte) {
          bytes.push_back(static_cast<char>(*byte));
        } else {
          all_mapped = false;
        }
      }
      if (!all_mapped) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    *tokens = {LossyUtf8(bytes)};
  }
};

// Runs of <0xNN> tokens become their bytes when those form valid UTF-8, and
// one U+FFFD per byte otherwise.
class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : *tokens) {
      if (auto byte = ParseByteToken(token)) {
        pending.push_back(static_cast<char>(*byte));
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    *tokens = std::move(out);
  }

 private:
  static std::optional<unsigned char> ParseByteToken(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') {
      return std::nullopt;
    }
    int value = 0;
    for (int i = 3; i < 5; ++i) {
      const char c = token[i];
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else {
        return std::nullopt;
      }
      value = value * 16 + digit;
    }
    return static_cast<unsigned char>(value);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    *tokens = {absl::StrJoin(*tokens, "")};
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters of
// each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      std::vector<size_t> starts;  // byte offset of each code point
      std::vector<char32_t> chars;
      for (size_t pos = 0; pos < token.size();) {
        starts.push_back(pos);
        chars.push_back(NextCodePoint(token, &pos));
      }
      size_t start_cut = 0;
      for (size_t i = 0; i < std::min(start_, chars.size()) && chars[i] == content_; ++i) {
        start_cut = i + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < std::min(stop_, chars.size()); ++i) {
        const size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        stop_cut = index;
      }
      if (stop_cut <= start_cut) {
        token.clear();
        continue;
      }
      const size_t begin = start_cut < chars.size() ? starts[start_cut] : token.size();
      const size_t end = stop_cut < chars.size() ? starts[stop_cut] : token.size();
      token = token.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string literal, std::unique_ptr<PcreRegex> regex, std::string content)
      : literal_(std::move(literal)), regex_(std::move(regex)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      if (regex_ == nullptr) {
        if (!literal_.empty()) token = absl::StrReplaceAll(token, {{literal_, content_}});
        continue;
      }
      std::string out;
      size_t last = 0;
      for (const auto& [begin, end] : regex_->FindAll(token)) {
        out.append(token, last, begin - last);
        out += content_;
        last = end;
      }
      out.append(token, last);
      token = std::move(out);
    }
  }

 private:
  std::string literal_;
  std::unique_ptr<PcreRegex> regex_;
  std::string content_;
};

// The replacement character becomes a space, except in the first token,
// where (unless prepend_scheme is "never") it is dropped, as in `tokenizers`.
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      (*tokens)[i] =
          absl::StrReplaceAll((*tokens)[i], {{replacement_, i == 0 && strip_first_ ? "" : " "}});
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

absl::StatusOr<std::unique_ptr<Decoder>> ParseReplace(const Json& json, const std::string& path) {
  auto pattern = GetPattern(json, "pattern", path);
  if (!pattern.ok()) return pattern.status();
  auto content = GetString(json, "content", path);
  if (!content.ok()) return content.status();
  std::unique_ptr<PcreRegex> regex;
  if (pattern->is_regex) {
    auto compiled = PcreRegex::Compile(pattern->text);
    if (!compiled.ok()) return FieldError(FieldPath(path, "pattern"), compiled.status().message());
    regex = *std::move(compiled);
  }
  return std::make_unique<ReplaceDecoder>(pattern->text, std::move(regex), *std::move(content));
}

absl::StatusOr<std::unique_ptr<Decoder>> ParseStrip(const Json& json, const std::string& path) {
  auto content = GetString(json, "content", path);
  if (!content.ok()) return content.status();
  size_t pos = 0;
  if (content->empty() || (NextCodePoint(*content, &pos), pos != content->size())) {
    return FieldError(FieldPath(path, "content"), "must be one character");
  }
  pos = 0;
  const char32_t ch = NextCodePoint(*content, &pos);
  auto start = GetInt(json, "start", path, 0);
  if (!start.ok()) return start.status();
  auto stop = GetInt(json, "stop", path, 0);
  if (!stop.ok()) return stop.status();
  return std::make_unique<StripDecoder>(ch, static_cast<size_t>(*start),
                                        static_cast<size_t>(*stop));
}

absl::StatusOr<std::unique_ptr<Decoder>> ParseMetaspace(const Json& json, const std::string& path) {
  auto replacement = GetString(json, "replacement", path);
  if (!replacement.ok()) return replacement.status();
  if (replacement->empty()) return FieldError(FieldPath(path, "replacement"), "must not be empty");
  auto scheme = GetOptionalString(json, "prepend_scheme", path);
  if (!scheme.ok()) return scheme.status();
  bool strip_first = true;
  if (scheme->has_value()) {
    if (**scheme != "always" && **scheme != "first" && **scheme != "never") {
      return FieldError(FieldPath(path, "prepend_scheme"),
                        absl::StrCat("'", **scheme, "' is not supported"));
    }
    strip_first = **scheme != "never";
  } else {
    auto add_prefix_space = GetBool(json, "add_prefix_space", path, true);
    if (!add_prefix_space.ok()) return add_prefix_space.status();
    strip_first = *add_prefix_space;
  }
  return std::make_unique<MetaspaceDecoder>(*std::move(replacement), strip_first);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& json, const std::string& path) {
  absl::StatusOr<std::string> type = GetType(json, path);
  if (!type.ok()) return type.status();
  if (*type == "Sequence") {
    auto steps = ParseSequenceItems<Decoder>(json, "decoders", path, ParseDecoder);
    if (!steps.ok()) return steps.status();
    return std::make_unique<SequenceDecoder>(*std::move(steps));
  }
  if (*type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (*type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (*type == "Fuse") return std::make_unique<FuseDecoder>();
  if (*type == "Strip") return ParseStrip(json, path);
  if (*type == "Replace") return ParseReplace(json, path);
  if (*type == "Metaspace") return ParseMetaspace(json, path);
  return UnsupportedType(path, *type);
}

}  // namespace muserve::tokenizer_internal
