// Parser: turns the token stream into a statement tree (parser.cc), with the
// expressions inside tags parsed by ExpressionParser (expression_parser.h)
// over a shared TokenCursor (token_cursor.h). Every construct it
// does not implement (extends, include, import, call blocks, filter blocks,
// recursive loops, unknown filters or tests, ...) is a JinjaError naming the
// construct and its line, so a template either renders exactly or fails to
// load.
#pragma once

#include <vector>

#include "engine/tokenizer/jinja/ast.h"
#include "engine/tokenizer/jinja/lexer.h"

namespace muserve::jinja {

// Throws JinjaError (kSyntax or kUnsupported).
Body Parse(const std::vector<Token>& tokens);

}  // namespace muserve::jinja
