// A strict UTF-8 check written out independently of the tokenizer's own, for
// tests of code that produces text (the streaming detokenizer, output deltas).
#pragma once

#include <string_view>

namespace muserve::testing {

// No overlong forms, surrogates or code points past U+10FFFF.
bool IsStrictUtf8(std::string_view s);

}  // namespace muserve::testing
