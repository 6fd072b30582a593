#include "engine/tokenizer/jinja/lexer.h"

#include <cctype>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/format.h"
#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {
namespace {

[[noreturn]] void SyntaxError(int line, const std::string& message) {
  throw JinjaError(JinjaError::Kind::kSyntax, absl::StrCat("line ", line, ": ", message));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding of a string literal body, as jinja2
// applies it; unknown escapes keep their backslash.
std::string DecodeStringLiteral(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 >= body.size()) {
      out.push_back(body[i]);
      continue;
    }
    const char e = body[++i];
    switch (e) {
      case '\n':
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        char32_t c = 0;
        for (size_t k = 0; k < n; ++k) {
          const int h = i + 1 + k < body.size() ? HexValue(body[i + 1 + k]) : -1;
          if (h < 0)
            SyntaxError(
                line, absl::StrCat("truncated \\", std::string(1, e), " escape in string literal"));
          c = c * 16 + static_cast<char32_t>(h);
        }
        if (c > 0x10FFFF) SyntaxError(line, "illegal Unicode character in string literal");
        i += n;
        AppendUtf8(c, &out);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          char32_t c = 0;
          size_t k = 0;
          while (k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7') {
            c = c * 8 + static_cast<char32_t>(body[i + k] - '0');
            ++k;
          }
          i += k - 1;
          AppendUtf8(c, &out);
        } else if (e == 'N') {
          SyntaxError(line, "\\N{...} escapes in string literals are not supported");
        } else {
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(NormalizeNewlines(source)) {}

  std::vector<Token> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const size_t open = FindTagStart(pos_);
      std::string text =
          src_.substr(pos_, open == std::string::npos ? std::string::npos : open - pos_);
      if (open == std::string::npos) {
        Emit(TokenType::kText, text);
        Advance(src_.size());
        break;
      }
      const char kind = src_[open + 1];
      const char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && IsSpace(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool all_space = true;
          for (size_t k = l_pos; k < text.size(); ++k) all_space = all_space && IsSpace(text[k]);
          if (all_space) text.resize(l_pos);
        }
      }
      Emit(TokenType::kText, text);
      Advance(open);
      const size_t body = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        LexComment(body);
      } else if (kind == '%' && IsRawBlock(body)) {
        LexRaw();
      } else {
        LexTag(kind, body);
      }
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    tokens_.push_back({TokenType::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  void Emit(TokenType type, std::string value) {
    if (type == TokenType::kText && value.empty()) return;
    tokens_.push_back({type, std::move(value), line_});
  }

  // Moves to `to`, counting newlines for line numbers.
  void Advance(size_t to) {
    for (size_t i = pos_; i < to && i < src_.size(); ++i) line_ += src_[i] == '\n';
    pos_ = to;
  }

  // After a closing delimiter ending at `end`: `-` strips all whitespace,
  // otherwise block and comment tags drop one newline (trim_blocks).
  void CloseTag(size_t end, bool strip, bool trim_newline) {
    if (strip) {
      while (end < src_.size() && IsSpace(src_[end])) ++end;
    } else if (trim_newline && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    Advance(end);
  }

  void LexComment(size_t body) {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) SyntaxError(line_, "unterminated comment");
    const char sign = close > body ? src_[close - 1] : '\0';
    CloseTag(close + 2, sign == '-', sign != '+');
  }

  size_t SkipSpaces(size_t i) const {
    while (i < src_.size() && IsSpace(src_[i])) ++i;
    return i;
  }

  bool IsRawBlock(size_t body) const {
    size_t i = SkipSpaces(body);
    if (src_.compare(i, 3, "raw") != 0) return false;
    i = SkipSpaces(i + 3);
    if (i < src_.size() && src_[i] == '-') ++i;
    return src_.compare(i, 2, "%}") == 0;
  }

  void LexRaw() {
    const size_t begin_close = src_.find("%}", pos_);
    const bool strip_after_begin = src_[begin_close - 1] == '-';
    size_t content = begin_close + 2;
    if (strip_after_begin) content = SkipSpaces(content);
    for (size_t search = content;;) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) SyntaxError(line_, "missing {% endraw %}");
      size_t i = open + 2;
      const char sign = i < src_.size() ? src_[i] : '\0';
      if (sign == '-' || sign == '+') ++i;
      i = SkipSpaces(i);
      if (src_.compare(i, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      i = SkipSpaces(i + 6);
      bool strip = false;
      if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) strip = src_[i++] == '-';
      if (src_.compare(i, 2, "%}") != 0) SyntaxError(line_, "malformed {% endraw %}");
      std::string text = src_.substr(content, open - content);
      if (sign == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      }
      Advance(content);
      Emit(TokenType::kText, text);
      CloseTag(i + 2, strip, true);
      return;
    }
  }

  void LexTag(char kind, size_t body) {
    const bool is_block = kind == '%';
    Emit(is_block ? TokenType::kBlockBegin : TokenType::kVarBegin, "");
    Advance(body);
    int depth = 0;  // open brackets; closing delimiters only count at depth 0
    const char closer = is_block ? '%' : '}';
    while (true) {
      size_t i = pos_;
      while (i < src_.size() && IsSpace(src_[i])) ++i;
      Advance(i);
      if (i >= src_.size())
        SyntaxError(line_, is_block ? "unterminated {% tag" : "unterminated {{ tag");
      if (depth == 0) {
        // `-%}` strips following whitespace; `+%}` keeps the newline that
        // trim_blocks would remove (blocks only).
        const char sign = src_[i] == '-' || (is_block && src_[i] == '+') ? src_[i] : '\0';
        const size_t at = sign ? i + 1 : i;
        if (at + 1 < src_.size() && src_[at] == closer && src_[at + 1] == '}') {
          Emit(is_block ? TokenType::kBlockEnd : TokenType::kVarEnd, "");
          CloseTag(at + 2, sign == '-', is_block && sign != '+');
          return;
        }
      }
      const char c = src_[i];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[j])) || src_[j] == '_'))
          ++j;
        Emit(TokenType::kName, src_.substr(i, j - i));
        Advance(j);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        LexNumber(i);
      } else if (c == '\'' || c == '"') {
        size_t j = i + 1;
        while (j < src_.size() && src_[j] != c) j += src_[j] == '\\' ? 2 : 1;
        if (j >= src_.size()) SyntaxError(line_, "unterminated string literal");
        Emit(TokenType::kString,
             DecodeStringLiteral(std::string_view(src_).substr(i + 1, j - i - 1), line_));
        Advance(j + 1);
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                           "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                           "]",  "{",  "}",  ",",  ".",  ":",  "|", ";"};
        const char* op = nullptr;
        for (const char* candidate : kOps) {
          if (src_.compare(i, std::strlen(candidate), candidate) == 0) {
            op = candidate;
            break;
          }
        }
        if (op == nullptr)
          SyntaxError(line_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
        if (std::strchr("([{", op[0]) && op[1] == '\0') ++depth;
        if (std::strchr(")]}", op[0]) && op[1] == '\0') --depth;
        Emit(TokenType::kOp, op);
        Advance(i + std::strlen(op));
      }
    }
  }

  void LexNumber(size_t i) {
    auto digits = [this](size_t j) {
      while (j < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[j])) ||
                                 (src_[j] == '_' && j + 1 < src_.size() &&
                                  std::isdigit(static_cast<unsigned char>(src_[j + 1]))))) {
        ++j;
      }
      return j;
    };
    size_t j = digits(i);
    bool is_float = false;
    if (j + 1 < src_.size() && src_[j] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[j + 1]))) {
      j = digits(j + 1);
      is_float = true;
    }
    if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
      size_t k = j + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        j = digits(k);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = i; k < j; ++k) {
      if (src_[k] != '_') text.push_back(src_[k]);
    }
    Emit(is_float ? TokenType::kFloat : TokenType::kInt, text);
    Advance(j);
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> Tokenize(std::string_view source) { return Lexer(source).Run(); }

}  // namespace muserve::jinja
