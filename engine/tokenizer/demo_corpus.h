// The built-in training text of the demo tokenizer: a few KB of English prose
// and code, fixed forever so the demo tokenizer (and every demo model made
// with it) is reproducible.
#pragma once

#include <string_view>

namespace muserve::tokenizer_internal {

std::string_view DemoCorpus();

}  // namespace muserve::tokenizer_internal
