#include "engine/tokenizer/jinja/parser.h"

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/expression_parser.h"
#include "engine/tokenizer/jinja/token_cursor.h"

namespace muserve::jinja {
namespace {

// The statement half of the parser: text, {{ }} and {% %} tags, with the
// expressions inside them handed to an ExpressionParser reading the same
// cursor.
class StatementParser {
 public:
  explicit StatementParser(const std::vector<Token>& tokens) : c_(tokens), expr_(&c_) {}

  Body ParseTemplate() {
    std::string end_tag;
    return ParseBody({}, &end_tag);
  }

 private:
  // Parses until a `{% name %}` with name in `ends` (consumed up to and
  // including the name, which is stored in *end_tag) or end of input.
  Body ParseBody(std::initializer_list<const char*> ends, std::string* end_tag) {
    TokenCursor::DepthGuard guard(&c_);
    Body body;
    while (true) {
      const Token& t = c_.Peek();
      if (t.type == TokenType::kEof) {
        if (ends.size() != 0) {
          c_.Fail(
              absl::StrCat("unexpected end of template: missing {% ", *(ends.end() - 1), " %}"));
        }
        return body;
      }
      if (t.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = t.line;
        s->text = c_.Next().value;
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kVarBegin) {
        c_.Next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kEmit;
        s->line = c_.Line();
        s->expr = expr_.ParseTuple(true);
        if (c_.Peek().type != TokenType::kVarEnd)
          c_.Fail("expected '}}', got " + TokenCursor::Describe(c_.Peek()));
        c_.Next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        c_.Next();
        const std::string& name = c_.Peek().value;
        for (const char* end : ends) {
          if (c_.Peek().type == TokenType::kName && name == end) {
            *end_tag = c_.Next().value;
            return body;
          }
        }
        body.push_back(ParseStatement());
      } else {
        c_.Fail("unexpected " + TokenCursor::Describe(t));
      }
    }
  }

  StmtPtr ParseStatement() {
    const int line = c_.Line();
    if (c_.Peek().type != TokenType::kName)
      c_.Fail("expected a statement name, got " + TokenCursor::Describe(c_.Peek()));
    const std::string keyword = c_.Next().value;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (keyword == "if") {
      ParseIf(s.get());
    } else if (keyword == "for") {
      ParseFor(s.get());
    } else if (keyword == "set") {
      ParseSet(s.get());
    } else if (keyword == "macro") {
      ParseMacro(s.get());
    } else if (keyword == "break" || keyword == "continue") {
      s->kind = keyword == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      c_.ExpectBlockEnd();
    } else if (keyword == "generation") {
      s->kind = Stmt::Kind::kScope;
      c_.ExpectBlockEnd();
      std::string end;
      s->body = ParseBody({"endgeneration"}, &end);
      c_.ExpectBlockEnd();
    } else if (keyword.rfind("end", 0) == 0 || keyword == "elif" || keyword == "else") {
      c_.Fail("unexpected '{% " + keyword + " %}'");
    } else {
      c_.Unsupported("'{% " + keyword + " %}'", line);
    }
    return s;
  }

  void ParseIf(Stmt* s) {
    s->kind = Stmt::Kind::kIf;
    s->conds.push_back(expr_.ParseTuple(true));
    c_.ExpectBlockEnd();
    while (true) {
      std::string end;
      s->bodies.push_back(ParseBody({"elif", "else", "endif"}, &end));
      if (end == "elif") {
        s->conds.push_back(expr_.ParseTuple(true));
        c_.ExpectBlockEnd();
      } else if (end == "else") {
        c_.ExpectBlockEnd();
        s->bodies.push_back(ParseBody({"endif"}, &end));
        c_.ExpectBlockEnd();
        return;
      } else {
        c_.ExpectBlockEnd();
        return;
      }
    }
  }

  void ParseAssignTargets(std::vector<std::string>* targets) {
    const bool paren = c_.AcceptOp("(");
    do {
      if (paren && c_.IsOp(")")) break;
      targets->push_back(c_.ExpectName());
      if (c_.IsOp(".")) c_.Fail("attribute targets are only supported in {% set %}");
    } while (c_.AcceptOp(","));
    if (paren) c_.ExpectOp(")");
  }

  void ParseFor(Stmt* s) {
    s->kind = Stmt::Kind::kFor;
    ParseAssignTargets(&s->targets);
    if (!c_.AcceptName("in"))
      c_.Fail("expected 'in' in for loop, got " + TokenCursor::Describe(c_.Peek()));
    s->expr = expr_.ParseTuple(false);
    if (c_.AcceptName("if")) s->cond = expr_.ParseExpression(true);
    if (c_.IsName("recursive")) c_.Unsupported("'recursive' for loops", c_.Line());
    c_.ExpectBlockEnd();
    std::string end;
    s->body = ParseBody({"else", "endfor"}, &end);
    if (end == "else") {
      c_.ExpectBlockEnd();
      s->else_body = ParseBody({"endfor"}, &end);
    }
    c_.ExpectBlockEnd();
  }

  void ParseSet(Stmt* s) {
    s->kind = Stmt::Kind::kSet;
    const std::string first = c_.ExpectName();
    s->targets.push_back(first);
    if (c_.AcceptOp(".")) {
      s->attr = c_.ExpectName();
    } else {
      while (c_.AcceptOp(",")) s->targets.push_back(c_.ExpectName());
    }
    if (c_.AcceptOp("=")) {
      s->expr = expr_.ParseTuple(true);
      c_.ExpectBlockEnd();
      return;
    }
    if (c_.IsOp("|")) c_.Unsupported("filtered block {% set %}", c_.Line());
    if (s->targets.size() != 1 || !s->attr.empty()) c_.Fail("block {% set %} takes a single name");
    s->kind = Stmt::Kind::kSetBlock;
    c_.ExpectBlockEnd();
    std::string end;
    s->body = ParseBody({"endset"}, &end);
    c_.ExpectBlockEnd();
  }

  void ParseMacro(Stmt* s) {
    s->kind = Stmt::Kind::kMacro;
    s->name = c_.ExpectName();
    c_.ExpectOp("(");
    while (!c_.IsOp(")")) {
      if (!s->params.empty()) c_.ExpectOp(",");
      if (c_.IsOp(")")) break;
      s->params.push_back(c_.ExpectName());
      s->defaults.push_back(c_.AcceptOp("=") ? expr_.ParseExpression(true) : nullptr);
    }
    c_.ExpectOp(")");
    c_.ExpectBlockEnd();
    std::string end;
    s->body = ParseBody({"endmacro"}, &end);
    if (c_.Peek().type == TokenType::kName) c_.Next();  // optional macro name after endmacro
    c_.ExpectBlockEnd();
  }

  TokenCursor c_;
  ExpressionParser expr_;  // reads c_; declared after it
};

}  // namespace

Body Parse(const std::vector<Token>& tokens) { return StatementParser(tokens).ParseTemplate(); }

}  // namespace muserve::jinja
