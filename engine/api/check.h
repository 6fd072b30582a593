// MUSERVE_CHECK: aborts on a broken invariant of our own (a bug in Muserve),
// never on anything a client or a model file can cause: those return a
// Status. (Debian's Abseil 20220623 predates absl/log's CHECK.)
#pragma once

#include <cstdio>
#include <cstdlib>

namespace muserve::internal {

[[noreturn]] inline void CheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: MUSERVE_CHECK failed: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace muserve::internal

#define MUSERVE_CHECK(condition)                                        \
  do {                                                                  \
    if (!(condition)) {                                                 \
      ::muserve::internal::CheckFailed(#condition, __FILE__, __LINE__); \
    }                                                                   \
  } while (false)
