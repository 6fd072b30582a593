#include "engine/tokenizer/jinja/expression_parser.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/digits.h"

namespace muserve::jinja {
namespace {

// Records the height of `e` from its (already sealed) children.
ExprPtr Seal(ExprPtr e) {
  int h = 0;
  for (const auto& c : e->children) {
    if (c) h = std::max(h, c->height);
  }
  for (const auto& [k, v] : e->kwargs) h = std::max(h, v->height);
  e->height = h + 1;
  if (e->height > kMaxNesting) {
    throw JinjaError(JinjaError::Kind::kSyntax,
                     absl::StrCat("line ", e->line, ": expression nested too deeply"));
  }
  return e;
}

ExprPtr Make(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

// A comma-separated list becomes a tuple; `with_condexpr` allows `a if b else c`.

ExprPtr Literal(Value v, int line) {
  auto e = Make(Expr::Kind::kLiteral, line);
  e->literal = std::move(v);
  return e;
}

ExprPtr Binary(const std::string& op, ExprPtr left, ExprPtr right, int line) {
  auto e = Make(Expr::Kind::kBinary, line);
  e->name = op;
  e->children.push_back(std::move(left));
  e->children.push_back(std::move(right));
  return Seal(std::move(e));
}

}  // namespace

ExprPtr ExpressionParser::ParseTuple(bool with_condexpr) {
  const int line = c_.Line();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) {
      if (!c_.AcceptOp(",")) break;
      is_tuple = true;
      if (AtTupleEnd()) break;
    }
    items.push_back(ParseExpression(with_condexpr));
  }
  if (!is_tuple) return std::move(items[0]);
  auto e = Make(Expr::Kind::kTuple, line);
  e->children = std::move(items);
  return Seal(std::move(e));
}

bool ExpressionParser::AtTupleEnd() const {
  const Token& t = c_.Peek();
  return t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd ||
         t.type == TokenType::kEof || c_.IsOp(")") ||
         (t.type == TokenType::kName && t.value == "if");
}

ExprPtr ExpressionParser::ParseExpression(bool with_condexpr) {
  TokenCursor::DepthGuard guard(&c_);
  if (!with_condexpr) return ParseOr();
  ExprPtr expr = ParseOr();
  while (c_.IsName("if")) {
    const int line = c_.Line();
    c_.Next();
    auto cond = Make(Expr::Kind::kCond, line);
    cond->children.push_back(ParseOr());
    cond->children.push_back(std::move(expr));
    cond->children.push_back(c_.AcceptName("else") ? ParseExpression(true) : nullptr);
    expr = Seal(std::move(cond));
  }
  return expr;
}

ExprPtr ExpressionParser::ParseOr() {
  ExprPtr left = ParseAnd();
  while (c_.IsName("or")) {
    const int line = c_.Next().line;
    left = Binary("or", std::move(left), ParseAnd(), line);
  }
  return left;
}

ExprPtr ExpressionParser::ParseAnd() {
  ExprPtr left = ParseNot();
  while (c_.IsName("and")) {
    const int line = c_.Next().line;
    left = Binary("and", std::move(left), ParseNot(), line);
  }
  return left;
}

ExprPtr ExpressionParser::ParseNot() {
  if (c_.IsName("not")) {
    TokenCursor::DepthGuard guard(&c_);
    auto e = Make(Expr::Kind::kUnary, c_.Next().line);
    e->name = "not";
    e->children.push_back(ParseNot());
    return Seal(std::move(e));
  }
  return ParseCompare();
}

ExprPtr ExpressionParser::ParseCompare() {
  const int line = c_.Line();
  ExprPtr first = ParseMath1();
  std::vector<std::string> ops;
  std::vector<ExprPtr> rest;
  while (true) {
    const Token& t = c_.Peek();
    if (t.type == TokenType::kOp && (t.value == "==" || t.value == "!=" || t.value == "<" ||
                                     t.value == ">" || t.value == "<=" || t.value == ">=")) {
      ops.push_back(c_.Next().value);
    } else if (c_.IsName("in")) {
      c_.Next();
      ops.push_back("in");
    } else if (c_.IsName("not") && c_.IsName("in", 1)) {
      c_.Next();
      c_.Next();
      ops.push_back("not in");
    } else {
      break;
    }
    rest.push_back(ParseMath1());
  }
  if (ops.empty()) return first;
  auto e = Make(Expr::Kind::kCompare, line);
  e->children.push_back(std::move(first));
  for (auto& r : rest) e->children.push_back(std::move(r));
  e->ops = std::move(ops);
  return Seal(std::move(e));
}

ExprPtr ExpressionParser::ParseMath1() {
  ExprPtr left = ParseConcat();
  while (c_.IsOp("+") || c_.IsOp("-")) {
    const Token& t = c_.Next();
    left = Binary(t.value, std::move(left), ParseConcat(), t.line);
  }
  return left;
}

ExprPtr ExpressionParser::ParseConcat() {
  ExprPtr left = ParseMath2();
  while (c_.IsOp("~")) {
    const int line = c_.Next().line;
    left = Binary("~", std::move(left), ParseMath2(), line);
  }
  return left;
}

ExprPtr ExpressionParser::ParseMath2() {
  ExprPtr left = ParsePow();
  while (c_.IsOp("*") || c_.IsOp("/") || c_.IsOp("//") || c_.IsOp("%")) {
    const Token& t = c_.Next();
    left = Binary(t.value, std::move(left), ParsePow(), t.line);
  }
  return left;
}

ExprPtr ExpressionParser::ParsePow() {
  ExprPtr left = ParseUnary(true);
  while (c_.IsOp("**")) {
    const int line = c_.Next().line;
    left = Binary("**", std::move(left), ParseUnary(true), line);
  }
  return left;
}

ExprPtr ExpressionParser::ParseUnary(bool with_filter) {
  TokenCursor::DepthGuard guard(&c_);
  ExprPtr node;
  if (c_.IsOp("-") || c_.IsOp("+")) {
    const Token& t = c_.Next();
    node = Make(Expr::Kind::kUnary, t.line);
    node->name = t.value;
    node->children.push_back(ParseUnary(false));
    node = Seal(std::move(node));
  } else {
    node = ParsePrimary();
  }
  node = ParsePostfix(std::move(node));
  if (with_filter) node = ParseFilterExpr(std::move(node));
  return node;
}

ExprPtr ExpressionParser::ParsePrimary() {
  const Token& t = c_.Peek();
  const int line = t.line;
  if (t.type == TokenType::kName) {
    const std::string name = c_.Next().value;
    if (name == "true" || name == "True") return Literal(Value(true), line);
    if (name == "false" || name == "False") return Literal(Value(false), line);
    if (name == "none" || name == "None") return Literal(Value::None(), line);
    auto e = Make(Expr::Kind::kName, line);
    e->name = name;
    return e;
  }
  if (t.type == TokenType::kString) {
    std::string s;
    while (c_.Peek().type == TokenType::kString) s += c_.Next().value;
    return Literal(Value(std::move(s)), line);
  }
  if (t.type == TokenType::kInt) return ParseIntLiteral();
  if (t.type == TokenType::kFloat) {
    return Literal(Value(std::strtod(c_.Next().value.c_str(), nullptr)), line);
  }
  if (c_.AcceptOp("(")) return ParseParenthesized(line);
  if (c_.AcceptOp("[")) {
    auto e = Make(Expr::Kind::kList, line);
    while (!c_.IsOp("]")) {
      if (!e->children.empty()) c_.ExpectOp(",");
      if (c_.IsOp("]")) break;
      e->children.push_back(ParseExpression(true));
    }
    c_.ExpectOp("]");
    return Seal(std::move(e));
  }
  if (c_.AcceptOp("{")) {
    auto e = Make(Expr::Kind::kDict, line);
    while (!c_.IsOp("}")) {
      if (!e->children.empty()) c_.ExpectOp(",");
      if (c_.IsOp("}")) break;
      e->children.push_back(ParseExpression(true));
      c_.ExpectOp(":");
      e->children.push_back(ParseExpression(true));
    }
    c_.ExpectOp("}");
    return Seal(std::move(e));
  }
  c_.Fail("unexpected " + TokenCursor::Describe(t));
}

// Python ints are unbounded; a literal beyond int64 cannot be represented
// here, so the template is refused rather than given a wrong number.
ExprPtr ExpressionParser::ParseIntLiteral() {
  const Token& t = c_.Next();
  const std::optional<int64_t> v = AsciiDigitsValue(t.value);
  if (!v) c_.Unsupported("integer literal beyond 64 bits", t.line);
  return Literal(Value(*v), t.line);
}

// After `(`: `()`, a parenthesized expression, or a tuple.
ExprPtr ExpressionParser::ParseParenthesized(int line) {
  if (c_.AcceptOp(")")) return Make(Expr::Kind::kTuple, line);
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  items.push_back(ParseExpression(true));
  while (c_.AcceptOp(",")) {
    is_tuple = true;
    if (c_.IsOp(")")) break;
    items.push_back(ParseExpression(true));
  }
  c_.ExpectOp(")");
  if (!is_tuple) return std::move(items[0]);
  auto e = Make(Expr::Kind::kTuple, line);
  e->children = std::move(items);
  return Seal(std::move(e));
}

ExprPtr ExpressionParser::ParsePostfix(ExprPtr node) {
  while (true) {
    const int line = c_.Line();
    if (c_.AcceptOp(".")) {
      const Token& t = c_.Peek();
      if (t.type == TokenType::kName) {
        auto e = Make(Expr::Kind::kGetAttr, line);
        e->name = c_.Next().value;
        e->children.push_back(std::move(node));
        node = Seal(std::move(e));
      } else if (t.type == TokenType::kInt) {
        // `x.0` is `x[0]`. jinja2 indexes with the exact (unbounded) int;
        // one beyond int64 is out of range of every list and string and
        // matches no string key, just as INT64_MAX is.
        auto e = Make(Expr::Kind::kGetItem, line);
        e->children.push_back(std::move(node));
        const int64_t index = AsciiDigitsValue(c_.Next().value).value_or(INT64_MAX);
        e->children.push_back(Literal(Value(index), line));
        node = Seal(std::move(e));
      } else {
        c_.Fail("expected an attribute name after '.', got " + TokenCursor::Describe(t));
      }
    } else if (c_.AcceptOp("[")) {
      node = ParseSubscript(std::move(node), line);
    } else if (c_.IsOp("(")) {
      node = ParseCall(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr ExpressionParser::ParseSubscript(ExprPtr obj, int line) {
  ExprPtr start;
  if (!c_.IsOp(":")) {
    start = ParseExpression(true);
    if (c_.IsOp(",")) c_.Unsupported("tuple subscripts", line);
    if (c_.AcceptOp("]")) {
      auto e = Make(Expr::Kind::kGetItem, line);
      e->children.push_back(std::move(obj));
      e->children.push_back(std::move(start));
      return Seal(std::move(e));
    }
  }
  c_.ExpectOp(":");
  auto e = Make(Expr::Kind::kSlice, line);
  e->children.push_back(std::move(obj));
  e->children.push_back(std::move(start));
  e->children.push_back(c_.IsOp(":") || c_.IsOp("]") ? nullptr : ParseExpression(true));
  if (c_.AcceptOp(":")) {
    e->children.push_back(c_.IsOp("]") ? nullptr : ParseExpression(true));
  } else {
    e->children.push_back(nullptr);
  }
  c_.ExpectOp("]");
  return Seal(std::move(e));
}

// Parses `( args, name=kwargs )` into e->children (after those already
// there) and e->kwargs.
void ExpressionParser::ParseArgs(Expr* e) {
  c_.ExpectOp("(");
  bool first = true;
  while (!c_.IsOp(")")) {
    if (!first) c_.ExpectOp(",");
    first = false;
    if (c_.IsOp(")")) break;
    if (c_.IsOp("*") || c_.IsOp("**")) c_.Unsupported("*args / **kwargs in calls", c_.Line());
    if (c_.Peek().type == TokenType::kName && c_.IsOp("=", 1)) {
      std::string key = c_.Next().value;
      c_.Next();
      e->kwargs.emplace_back(std::move(key), ParseExpression(true));
    } else {
      if (!e->kwargs.empty()) c_.Fail("positional argument follows keyword argument");
      e->children.push_back(ParseExpression(true));
    }
  }
  c_.ExpectOp(")");
}

ExprPtr ExpressionParser::ParseCall(ExprPtr callee) {
  auto e = Make(Expr::Kind::kCall, c_.Line());
  e->children.push_back(std::move(callee));
  ParseArgs(e.get());
  return Seal(std::move(e));
}

std::string ExpressionParser::ParseDottedName() {
  std::string name = c_.ExpectName();
  while (c_.AcceptOp(".")) name += "." + c_.ExpectName();
  return name;
}

ExprPtr ExpressionParser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (c_.IsOp("|")) {
      const int line = c_.Next().line;
      auto e = Make(Expr::Kind::kFilter, line);
      e->name = ParseDottedName();
      if (FindFilter(e->name) == nullptr) c_.Unsupported("filter '" + e->name + "'", line);
      e->children.push_back(std::move(node));
      if (c_.IsOp("(")) ParseArgs(e.get());
      node = Seal(std::move(e));
    } else if (c_.IsName("is")) {
      node = ParseTest(std::move(node));
    } else if (c_.IsOp("(")) {
      node = ParseCall(std::move(node));
    } else {
      return node;
    }
  }
}

// At `is`: `is [not] name`, then `(args)` or one bare argument
// (`x is divisibleby 3`), as jinja2.parser.parse_test takes them.
ExprPtr ExpressionParser::ParseTest(ExprPtr node) {
  const int line = c_.Next().line;
  auto e = Make(Expr::Kind::kTest, line);
  e->negated = c_.AcceptName("not");
  e->name = ParseDottedName();
  if (FindTest(e->name) == nullptr) c_.Unsupported("test '" + e->name + "'", line);
  e->children.push_back(std::move(node));
  const Token& t = c_.Peek();
  if (c_.IsOp("(")) {
    ParseArgs(e.get());
  } else if ((t.type == TokenType::kName && t.value != "else" && t.value != "or" &&
              t.value != "and") ||
             t.type == TokenType::kString || t.type == TokenType::kInt ||
             t.type == TokenType::kFloat || c_.IsOp("[") || c_.IsOp("{")) {
    if (t.type == TokenType::kName && t.value == "is") c_.Fail("unexpected 'is'");
    e->children.push_back(ParsePostfix(ParsePrimary()));
  }
  return Seal(std::move(e));
}

}  // namespace muserve::jinja
