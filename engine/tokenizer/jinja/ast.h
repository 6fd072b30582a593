// The parsed template: a tree of statements (Stmt) holding expressions (Expr).
// Nodes own their children; the tree is immutable after parsing, so one
// compiled template can be rendered from many threads at once.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // children = items
    kTuple,    // children = items
    kDict,     // children = key0, value0, key1, value1, ...
    kGetAttr,  // children[0] . name
    kGetItem,  // children[0] [ children[1] ]
    kSlice,    // children[0] [ children[1] : children[2] : children[3] ] (null = omitted)
    kCall,     // children[0] ( children[1..], kwargs )
    kFilter,   // children[0] | name ( children[1..], kwargs )
    kTest,     // children[0] is [not] name ( children[1..], kwargs ); negated
    kUnary,    // name = "-", "+", "not"; children[0]
    kBinary,   // name = operator ("+", "~", "and", "or", ...); children[0], children[1]
    kCompare,  // children[0] ops[0] children[1] ops[1] children[2] ...
    kCond,     // children[1] if children[0] else children[2] (null = undefined)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
  // Height of this subtree; the parser bounds it so that evaluation (which
  // recurses) cannot overflow the stack on `1 + 1 + ... + 1`.
  int height = 1;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kEmit,      // {{ expr }}
    kIf,        // conds[i] -> bodies[i]; bodies.size() == conds.size() + 1 when there is an else
    kFor,       // for targets in expr [if cond] body [else else_body]
    kSet,       // set targets = expr, or set targets[0].attr = expr (attr non-empty)
    kSetBlock,  // {% set targets[0] %}body{% endset %}
    kMacro,     // macro name(params = defaults) body
    kBreak,
    kContinue,
    kScope,  // body rendered in place: {% generation %} (transformers' extension)
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::string name;
  std::string attr;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  std::vector<std::string> targets;
  Body body;
  Body else_body;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param; null when required
};

}  // namespace muserve::jinja
