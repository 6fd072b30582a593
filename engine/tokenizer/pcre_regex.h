// A compiled PCRE2 pattern (8-bit, UTF + UCP, JIT when available) used for the
// pre-tokenizers' split regexes. Immutable after construction, so one
// instance may be shared by any number of threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace muserve::tokenizer_internal {

class PcreRegex {
 public:
  // Compiles `pattern`; the error names the pattern and PCRE2's reason.
  static absl::StatusOr<std::unique_ptr<PcreRegex>> Compile(std::string_view pattern);
  // A regex matching `literal` exactly (for Split/Replace with a String pattern).
  static absl::StatusOr<std::unique_ptr<PcreRegex>> Literal(std::string_view literal);
  ~PcreRegex();
  PcreRegex(const PcreRegex&) = delete;
  PcreRegex& operator=(const PcreRegex&) = delete;

  // Byte ranges [begin, end) of the successive non-overlapping matches in
  // `text` (valid UTF-8), leftmost first as Oniguruma's find_iter reports
  // them; after an empty match the search resumes one character later.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  explicit PcreRegex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*; owned.
};

}  // namespace muserve::tokenizer_internal
