// Debian's Abseil is built without ABSL_USES_STD_STRING_VIEW, so
// absl::string_view is its own type and std::string_view does not convert to
// it implicitly (absl::StrCat, absl::StrJoin take absl::string_view).
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace muserve {

// A view of the same characters; valid as long as `text`'s storage is.
inline absl::string_view AsAbsl(std::string_view text) { return {text.data(), text.size()}; }

}  // namespace muserve
