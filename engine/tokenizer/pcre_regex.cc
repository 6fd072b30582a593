#include "engine/tokenizer/pcre_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/unicode.h"

namespace muserve::tokenizer_internal {
namespace {

// Oniguruma's \s (which `tokenizers` uses) is the White_Space property;
// PCRE2's UCP \s also takes U+180E. Spelling the set out keeps both engines
// splitting identically.
constexpr std::string_view kWhitespaceSet =
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}";

// Rewrites \s (inside and outside classes) and \S (outside classes) as the
// explicit set.
std::string AlignWhitespaceClasses(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[i + 1];
      ++i;
      if (n == 's') {
        if (in_class) {
          out += kWhitespaceSet;
        } else {
          out += "[";
          out += kWhitespaceSet;
          out += "]";
        }
      } else if (n == 'S' && !in_class) {
        out += "[^";
        out += kWhitespaceSet;
        out += "]";
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the class end.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

// Per-thread JIT stack: the default 32 KiB is too small for long whitespace
// runs under lookahead patterns.
pcre2_match_context* ThreadMatchContext() {
  struct Holder {
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    Holder() { pcre2_jit_stack_assign(context, nullptr, stack); }
    ~Holder() {
      pcre2_match_context_free(context);
      pcre2_jit_stack_free(stack);
    }
  };
  thread_local Holder holder;
  return holder.context;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PcreRegex>> PcreRegex::Compile(std::string_view pattern) {
  const std::string aligned = AlignWhitespaceClasses(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(aligned.data()), aligned.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat(
        "regex '", AsAbsl(pattern), "' does not compile: ", reinterpret_cast<const char*>(message),
        " at offset ", error_offset));
  }
  // JIT is an optimisation only: without it pcre2_match interprets.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<PcreRegex>(new PcreRegex(code));
}

absl::StatusOr<std::unique_ptr<PcreRegex>> PcreRegex::Literal(std::string_view literal) {
  std::string quoted;
  for (size_t pos = 0; pos < literal.size();) {
    const size_t start = pos;
    const char32_t cp = NextCodePoint(literal, &pos);
    if (cp < 0x80 &&
        !((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))) {
      absl::StrAppend(&quoted, "\\x{", absl::Hex(static_cast<uint32_t>(cp)), "}");
    } else {
      quoted.append(literal.substr(start, pos - start));
    }
  }
  return Compile(quoted);
}

PcreRegex::~PcreRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> PcreRegex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code, nullptr);
  pcre2_match_context* context = ThreadMatchContext();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc =
        pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, context);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit on pathological input.
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    matches.emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else if (end < text.size()) {
      start = end + Utf8SequenceLength(static_cast<unsigned char>(text[end]));
    } else {
      break;
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

}  // namespace muserve::tokenizer_internal
