// Escaping for log lines that must stay one line and, in JSON, stay valid
// whatever bytes a client sent: control characters become escapes and bytes
// that are not well-formed UTF-8 become U+FFFD, so a line always parses.
#pragma once

#include <string>
#include <string_view>

namespace muserve::server {

// Appends `text` as a JSON string literal, quotes included: `"`, `\` and
// control characters (U+0000..U+001F, U+007F) escaped, each byte of an
// ill-formed UTF-8 sequence (overlong, surrogate, above U+10FFFF, truncated)
// replaced by \ufffd. Well-formed non-ASCII text is kept as is.
void AppendJsonString(std::string_view text, std::string& out);

// Appends `text` with control characters escaped as in JSON and ill-formed
// UTF-8 replaced by \ufffd, but quotes and backslashes left alone and no
// surrounding quotes: for the free-text message of a text-format line.
void AppendOneLine(std::string_view text, std::string& out);

// True when `text` can be written bare as a text-format value: non-empty,
// well-formed UTF-8, no space, control character, `"`, `=` or `\`.
bool IsBareWord(std::string_view text);

}  // namespace muserve::server
