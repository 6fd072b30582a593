// ExpressionParser: Jinja expressions, with jinja2.parser's precedence
// (conditional, or, and, not, comparisons, + -, ~, * / // %, **, unary,
// postfix, filters and tests). Unknown filters and tests, *args / **kwargs
// and tuple subscripts are JinjaError(kUnsupported) naming the line; every
// expression tree it returns has its height recorded and bounded by
// kMaxNesting.
#pragma once

#include <string>

#include "engine/tokenizer/jinja/ast.h"
#include "engine/tokenizer/jinja/token_cursor.h"

namespace muserve::jinja {

// Reads from a cursor the statement parser owns and shares: each call leaves
// the cursor on the first token after the expression.
class ExpressionParser {
 public:
  explicit ExpressionParser(TokenCursor* cursor) : c_(*cursor) {}

  // A comma-separated list becomes a tuple; `with_condexpr` allows
  // `a if b else c`.
  ExprPtr ParseTuple(bool with_condexpr);
  ExprPtr ParseExpression(bool with_condexpr);

 private:
  bool AtTupleEnd() const;
  ExprPtr ParseOr();
  ExprPtr ParseAnd();
  ExprPtr ParseNot();
  ExprPtr ParseCompare();
  ExprPtr ParseMath1();
  ExprPtr ParseConcat();
  ExprPtr ParseMath2();
  ExprPtr ParsePow();
  ExprPtr ParseUnary(bool with_filter);
  ExprPtr ParsePrimary();
  ExprPtr ParseIntLiteral();
  ExprPtr ParseParenthesized(int line);
  ExprPtr ParsePostfix(ExprPtr node);
  ExprPtr ParseSubscript(ExprPtr obj, int line);
  void ParseArgs(Expr* e);
  ExprPtr ParseCall(ExprPtr callee);
  std::string ParseDottedName();
  ExprPtr ParseFilterExpr(ExprPtr node);
  ExprPtr ParseTest(ExprPtr node);

  TokenCursor& c_;
};

}  // namespace muserve::jinja
