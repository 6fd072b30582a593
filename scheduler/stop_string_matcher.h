// StopStringMatcher: finds a request's stop strings in text that arrives in
// pieces, without rescanning what it has already seen. One Knuth-Morris-Pratt
// automaton per stop string runs over the bytes; its state is the length of
// the longest suffix of the text so far that is a prefix of that string, so
// a stop string split over any number of pieces is found, and the same state
// says how much trailing text could still become a match.
//
// Which match fires: the one that ends first in the text; among matches that
// end at the same byte, the longest (the one that starts first). This is what
// a byte-by-byte stream would report, so the choice never depends on how the
// text was split into tokens. (Of "ab" and "abc" at the same place, "ab"
// fires: it is complete one byte earlier.)
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muserve {

class StopStringMatcher {
 public:
  // `stop_strings` must be non-empty strings (StopParams::Validate).
  explicit StopStringMatcher(const std::vector<std::string>& stop_strings);

  struct Match {
    size_t stop_index = 0;  // into the constructor's stop_strings
    size_t end = 0;         // offset just past the match in the text given to Feed
  };

  // Feeds `text`, the continuation of everything fed before. With
  // `report_matches`, stops at the first byte that completes a match and
  // returns it (the bytes after it are not consumed; the matcher is then
  // done). Without, complete matches are passed over (min_tokens not yet
  // reached) and only their use as prefixes of later matches remains.
  std::optional<Match> Feed(std::string_view text, bool report_matches);

  // Length of the longest suffix of the text fed so far that is a proper
  // prefix of some stop string: text a later byte could still complete into
  // a match (0 when none, or when there are no stop strings).
  size_t held_length() const;

 private:
  struct Automaton {
    std::string pattern;
    // failure[i]: length of the longest proper border of pattern[0, i), for
    // i in [0, pattern.size()]; the KMP fallback after a mismatch or match.
    std::vector<size_t> failure;
    size_t state = 0;  // always < pattern.size() between Feed calls
  };

  std::vector<Automaton> automata_;
};

}  // namespace muserve
