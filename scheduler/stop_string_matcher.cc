#include "scheduler/stop_string_matcher.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muserve {
namespace {

std::vector<size_t> FailureFunction(const std::string& pattern) {
  std::vector<size_t> failure(pattern.size() + 1, 0);
  size_t k = 0;
  for (size_t i = 1; i < pattern.size(); ++i) {
    while (k > 0 && pattern[i] != pattern[k]) k = failure[k];
    if (pattern[i] == pattern[k]) ++k;
    failure[i + 1] = k;
  }
  return failure;
}

}  // namespace

StopStringMatcher::StopStringMatcher(const std::vector<std::string>& stop_strings) {
  automata_.reserve(stop_strings.size());
  for (const std::string& pattern : stop_strings) {
    automata_.push_back(Automaton{pattern, FailureFunction(pattern), 0});
  }
}

std::optional<StopStringMatcher::Match> StopStringMatcher::Feed(std::string_view text,
                                                                bool report_matches) {
  for (size_t pos = 0; pos < text.size(); ++pos) {
    const char byte = text[pos];
    std::optional<size_t> best;  // the longest stop string completed by this byte
    for (size_t i = 0; i < automata_.size(); ++i) {
      Automaton& a = automata_[i];
      size_t state = a.state;
      while (state > 0 && a.pattern[state] != byte) state = a.failure[state];
      if (a.pattern[state] == byte) ++state;
      if (state == a.pattern.size()) {
        if (!best.has_value() || a.pattern.size() > automata_[*best].pattern.size()) best = i;
        // Keep the invariant state < size: continue from the longest border,
        // which is what a later, overlapping match would start from.
        state = a.failure[state];
      }
      a.state = state;
    }
    if (best.has_value() && report_matches) return Match{*best, pos + 1};
  }
  return std::nullopt;
}

size_t StopStringMatcher::held_length() const {
  size_t held = 0;
  for (const Automaton& a : automata_) held = std::max(held, a.state);
  return held;
}

}  // namespace muserve
