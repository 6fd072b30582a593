// Lexer: splits template source into text and tag tokens, applying Jinja's
// whitespace rules as transformers configures them (trim_blocks=True,
// lstrip_blocks=True, keep_trailing_newline=False):
//  - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`,
//    `-#}` strip all whitespace after it;
//  - lstrip_blocks: spaces/tabs between a line start and a `{%` or `{#` tag
//    are removed (unless the tag opens with `{%+`);
//  - trim_blocks: the first newline after a `%}` or `#}` is removed;
//  - "\r\n" and "\r" become "\n"; one trailing newline of the source is
//    dropped.
// Inside tags it produces expression tokens; `}}` / `%}` only close a tag
// outside brackets, as in jinja2.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace muserve::jinja {

enum class TokenType {
  kText,        // raw template text (value = text)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // value = decoded string literal
  kInt,     // value = digits (underscores removed)
  kFloat,   // value = literal text (underscores removed)
  kOp,      // value = operator text
  kEof,
};

struct Token {
  TokenType type;
  std::string value;
  int line;
};

// Throws JinjaError(kSyntax) on malformed input (unterminated tags, strings,
// unknown characters).
std::vector<Token> Tokenize(std::string_view source);

}  // namespace muserve::jinja
