#include "engine/tokenizer/jinja/token_cursor.h"

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {

bool TokenCursor::AcceptOp(const char* op) {
  if (!IsOp(op)) return false;
  Next();
  return true;
}

bool TokenCursor::AcceptName(const char* name) {
  if (!IsName(name)) return false;
  Next();
  return true;
}

void TokenCursor::ExpectOp(const char* op) {
  if (!AcceptOp(op)) Fail(absl::StrCat("expected '", op, "', got ", Describe(Peek())));
}

std::string TokenCursor::ExpectName() {
  if (Peek().type != TokenType::kName) Fail("expected a name, got " + Describe(Peek()));
  return Next().value;
}

void TokenCursor::ExpectBlockEnd() {
  if (Peek().type != TokenType::kBlockEnd) Fail("expected '%}', got " + Describe(Peek()));
  Next();
}

void TokenCursor::Fail(const std::string& message) const {
  throw JinjaError(JinjaError::Kind::kSyntax, absl::StrCat("line ", Line(), ": ", message));
}

void TokenCursor::Unsupported(const std::string& construct, int line) const {
  throw JinjaError(JinjaError::Kind::kUnsupported,
                   absl::StrCat("line ", line, ": unsupported Jinja construct ", construct));
}

std::string TokenCursor::Describe(const Token& t) {
  switch (t.type) {
    case TokenType::kEof:
      return "end of template";
    case TokenType::kBlockEnd:
      return "'%}'";
    case TokenType::kVarEnd:
      return "'}}'";
    case TokenType::kText:
      return "template text";
    case TokenType::kString:
      return "string literal";
    default:
      return "'" + t.value + "'";
  }
}

TokenCursor::DepthGuard::DepthGuard(TokenCursor* cursor) : cursor_(cursor) {
  if (++cursor_->depth_ > kMaxNesting) {
    --cursor_->depth_;  // the destructor does not run when the constructor throws
    cursor_->Fail("template nested too deeply");
  }
}

}  // namespace muserve::jinja
