// TokenCursor: the read position in a token stream, shared by the statement
// parser (parser.cc) and the expression parser (expression_parser.cc), with
// the error helpers both use so that every parse error has the same shape:
// "line N: ...".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "engine/tokenizer/jinja/lexer.h"

namespace muserve::jinja {

// Bound on statement nesting and expression height: parsing and evaluation
// both recurse, so an unbounded `((((...))))` or `{% if %}` chain would
// overflow the stack.
inline constexpr int kMaxNesting = 256;

// Invariant: `tokens` is non-empty and ends with a kEof token (as Tokenize
// returns it); the cursor never moves past that token, so Peek is always
// valid.
class TokenCursor {
 public:
  explicit TokenCursor(const std::vector<Token>& tokens) : toks_(tokens) {}

  const Token& Peek(size_t ahead = 0) const {
    const size_t i = pos_ + ahead;
    return i < toks_.size() ? toks_[i] : toks_.back();
  }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < toks_.size() - 1) ++pos_;
    return t;
  }
  int Line() const { return Peek().line; }
  bool IsOp(const char* op, size_t ahead = 0) const {
    return Peek(ahead).type == TokenType::kOp && Peek(ahead).value == op;
  }
  bool IsName(const char* name, size_t ahead = 0) const {
    return Peek(ahead).type == TokenType::kName && Peek(ahead).value == name;
  }
  bool AcceptOp(const char* op);
  bool AcceptName(const char* name);
  void ExpectOp(const char* op);
  std::string ExpectName();
  void ExpectBlockEnd();

  // Throw JinjaError: kSyntax at the current line, or kUnsupported naming
  // `construct` at `line`.
  [[noreturn]] void Fail(const std::string& message) const;
  [[noreturn]] void Unsupported(const std::string& construct, int line) const;
  // A token as error messages show it ("'%}'", "end of template", "'foo'").
  static std::string Describe(const Token& t);

  // Counts recursion depth across both parsers; fails past kMaxNesting.
  class DepthGuard {
   public:
    explicit DepthGuard(TokenCursor* cursor);
    ~DepthGuard() { --cursor_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    TokenCursor* cursor_;
  };

 private:
  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace muserve::jinja
