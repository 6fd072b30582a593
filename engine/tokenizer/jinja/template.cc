#include "engine/tokenizer/jinja/template.h"

#include <exception>
#include <new>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/format.h"
#include "engine/tokenizer/jinja/lexer.h"
#include "engine/tokenizer/jinja/parser.h"

namespace muserve::jinja {
namespace {

// A variable scope. The template body and each macro call get one whose
// parent chain ends at the template scope; each for loop gets a child of the
// scope it appears in, so `{% set %}` inside a loop does not leak out (which
// is why templates use namespace()).
struct Frame {
  std::unordered_map<std::string, Value> vars;
  const Frame* parent = nullptr;
};

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  Renderer(const Value& context, const RenderLimits& limits) : context_(context), limits_(limits) {
    AddGlobals(&globals_);
  }

  void Run(const Body& body, std::string* out) {
    Frame root;
    root_ = &root;
    Exec(body, root, out);
  }

  int line() const { return line_; }

 private:
  void Step() {
    if (++steps_ > limits_.max_steps) {
      throw JinjaError(JinjaError::Kind::kLimit,
                       absl::StrCat("template exceeded ", limits_.max_steps, " steps"));
    }
  }

  void Append(std::string* out, std::string_view text) {
    if (out->size() + text.size() > limits_.max_output_bytes) {
      throw JinjaError(JinjaError::Kind::kLimit, absl::StrCat("template output exceeds ",
                                                              limits_.max_output_bytes, " bytes"));
    }
    out->append(text);
  }

  Value Lookup(const std::string& name, const Frame& frame) const {
    for (const Frame* f = &frame; f != nullptr; f = f->parent) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return it->second;
    }
    if (const Value* v = context_.as_dict().Find(name)) return *v;
    if (const Value* v = globals_.Find(name)) return *v;
    return Value(Undefined{name});
  }

  void Assign(const std::vector<std::string>& targets, const Value& value, Frame& frame) {
    if (targets.size() == 1) {
      frame.vars[targets[0]] = value;
      return;
    }
    if (!value.is_list() || value.as_list().items.size() != targets.size()) {
      ThrowRuntime(
          absl::StrCat("cannot unpack ", value.TypeName(), " into ", targets.size(), " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) frame.vars[targets[i]] = value.as_list().items[i];
  }

  Flow Exec(const Body& body, Frame& frame, std::string* out) {
    for (const StmtPtr& s : body) {
      Step();
      line_ = s->line;
      switch (s->kind) {
        case Stmt::Kind::kText:
          Append(out, s->text);
          break;
        case Stmt::Kind::kEmit:
          Append(out, ToPythonStr(Eval(*s->expr, frame)));
          break;
        case Stmt::Kind::kIf: {
          const Body* chosen = nullptr;
          for (size_t i = 0; i < s->conds.size() && chosen == nullptr; ++i) {
            if (Eval(*s->conds[i], frame).Truthy()) chosen = &s->bodies[i];
          }
          if (chosen == nullptr && s->bodies.size() > s->conds.size()) chosen = &s->bodies.back();
          if (chosen != nullptr) {
            const Flow f = Exec(*chosen, frame, out);
            if (f != Flow::kNormal) return f;
          }
          break;
        }
        case Stmt::Kind::kFor:
          ExecFor(*s, frame, out);
          break;
        case Stmt::Kind::kSet: {
          const Value v = Eval(*s->expr, frame);
          if (s->attr.empty()) {
            Assign(s->targets, v, frame);
          } else {
            const Value ns = Lookup(s->targets[0], frame);
            if (!ns.is_namespace()) {
              ThrowRuntime("cannot assign attribute on non-namespace object '" + s->targets[0] +
                           "'");
            }
            if (s->attr[0] == '_') {
              ThrowRuntime(
                  "Chat templates cannot store underscore-prefixed attributes on a namespace");
            }
            ns.as_dict().Set(s->attr, v);
          }
          break;
        }
        case Stmt::Kind::kSetBlock: {
          std::string captured;
          Exec(s->body, frame, &captured);
          frame.vars[s->targets[0]] = Value(std::move(captured));
          break;
        }
        case Stmt::Kind::kMacro:
          frame.vars[s->name] = MakeMacro(*s);
          break;
        case Stmt::Kind::kBreak:
          return Flow::kBreak;
        case Stmt::Kind::kContinue:
          return Flow::kContinue;
        case Stmt::Kind::kScope: {
          const Flow f = Exec(s->body, frame, out);
          if (f != Flow::kNormal) return f;
          break;
        }
      }
    }
    return Flow::kNormal;
  }

  void ExecFor(const Stmt& s, Frame& frame, std::string* out) {
    std::vector<Value> items = Iterate(Eval(*s.expr, frame));
    Frame loop_frame;
    loop_frame.parent = &frame;
    if (s.cond) {
      std::vector<Value> kept;
      for (Value& item : items) {
        Step();
        Assign(s.targets, item, loop_frame);
        if (Eval(*s.cond, loop_frame).Truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
      loop_frame.vars.clear();
    }
    if (items.empty()) {
      Exec(s.else_body, frame, out);
      return;
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      Step();
      // jinja2 starts every iteration from the enclosing scope: a `set` in
      // one iteration is not visible in the next.
      loop_frame.vars.clear();
      Value loop = Value::NewDict();
      DictData& d = loop.as_dict();
      d.Set("index", Value(i + 1));
      d.Set("index0", Value(i));
      d.Set("revindex", Value(n - i));
      d.Set("revindex0", Value(n - i - 1));
      d.Set("first", Value(i == 0));
      d.Set("last", Value(i == n - 1));
      d.Set("length", Value(n));
      d.Set("depth", Value(1));
      d.Set("depth0", Value(0));
      d.Set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value(Undefined{"previtem"}));
      d.Set("nextitem",
            i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value(Undefined{"nextitem"}));
      d.Set("cycle", Value::Function("cycle", [i](CallArgs& a) -> Value {
              if (a.args.empty()) ThrowRuntime("no items for cycling given");
              return a.args[static_cast<size_t>(i) % a.args.size()];
            }));
      loop_frame.vars["loop"] = loop;
      Assign(s.targets, items[static_cast<size_t>(i)], loop_frame);
      if (Exec(s.body, loop_frame, out) == Flow::kBreak) break;
    }
  }

  // Macros see the template scope (not the loop they were defined in), which
  // also keeps a macro stored in a namespace from outliving its scope.
  Value MakeMacro(const Stmt& s) {
    const Stmt* macro = &s;
    const Frame* scope = root_;
    return Value::Function(s.name, [this, macro, scope](CallArgs& a) -> Value {
      if (a.args.size() > macro->params.size()) {
        ThrowRuntime("macro '" + macro->name + "' takes not more than " +
                     std::to_string(macro->params.size()) + " argument(s)");
      }
      if (++depth_ > limits_.max_call_depth) {
        throw JinjaError(JinjaError::Kind::kLimit, "macro calls nested too deeply");
      }
      Frame f;
      f.parent = scope;
      for (const auto& [k, v] : a.kwargs) {
        bool known = false;
        for (const auto& p : macro->params) known = known || p == k;
        if (!known)
          ThrowRuntime("macro '" + macro->name + "' takes no keyword argument '" + k + "'");
      }
      for (size_t i = 0; i < macro->params.size(); ++i) {
        Value v = a.Get(i, macro->params[i]);
        if (v.is_undefined() && macro->defaults[i]) v = Eval(*macro->defaults[i], f);
        f.vars[macro->params[i]] = v;
      }
      const int saved_line = line_;
      std::string out;
      Exec(macro->body, f, &out);
      line_ = saved_line;
      --depth_;
      return Value(std::move(out));
    });
  }

  Value Call(const Value& callee, const Expr& e, size_t first_arg, const Value* self,
             Frame& frame) {
    CallArgs args;
    for (size_t i = first_arg; i < e.children.size(); ++i)
      args.args.push_back(Eval(*e.children[i], frame));
    for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, Eval(*v, frame));
    if (self != nullptr) {
      if (e.kind == Expr::Kind::kFilter) return FindFilter(e.name)(*self, args);
      const bool r = FindTest(e.name)(*self, args);
      return Value(e.negated ? !r : r);
    }
    if (callee.is_callable()) return callee.as_callable().fn(args);
    if (callee.is_undefined()) {
      ThrowRuntime(callee.as_undefined().name.empty()
                       ? "undefined value is not callable"
                       : "'" + callee.as_undefined().name + "' is undefined");
    }
    ThrowRuntime("'" + callee.TypeName() + "' object is not callable");
  }

  Value Eval(const Expr& e, Frame& frame) {
    line_ = e.line;
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return Lookup(e.name, frame);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        std::vector<Value> items;
        for (const auto& c : e.children) items.push_back(Eval(*c, frame));
        return Value::NewList(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Value d = Value::NewDict();
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value k = Eval(*e.children[i], frame);
          if (!k.is_string()) ThrowRuntime("dict literal keys must be strings");
          d.as_dict().Set(k.as_string(), Eval(*e.children[i + 1], frame));
        }
        return d;
      }
      case Expr::Kind::kGetAttr:
        return GetAttr(Eval(*e.children[0], frame), e.name);
      case Expr::Kind::kGetItem: {
        const Value obj = Eval(*e.children[0], frame);
        return GetItem(obj, Eval(*e.children[1], frame));
      }
      case Expr::Kind::kSlice: {
        const Value obj = Eval(*e.children[0], frame);
        Value parts[3];
        const Value* ptrs[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < 3; ++i) {
          if (e.children[i + 1]) {
            parts[i] = Eval(*e.children[i + 1], frame);
            ptrs[i] = &parts[i];
          }
        }
        return GetSlice(obj, ptrs[0], ptrs[1], ptrs[2]);
      }
      case Expr::Kind::kCall:
        return Call(Eval(*e.children[0], frame), e, 1, nullptr, frame);
      case Expr::Kind::kFilter:
      case Expr::Kind::kTest: {
        const Value self = Eval(*e.children[0], frame);
        return Call(Value(), e, 1, &self, frame);
      }
      case Expr::Kind::kUnary: {
        const Value v = Eval(*e.children[0], frame);
        if (e.name == "not") return Value(!v.Truthy());
        if (!v.is_number())
          ThrowRuntime("bad operand type for unary " + e.name + ": '" + v.TypeName() + "'");
        if (e.name == "+") return v.is_bool() ? Value(v.ToInt()) : v;
        if (v.is_float()) return Value(-v.as_float());
        return Value(-v.ToInt());
      }
      case Expr::Kind::kBinary: {
        if (e.name == "and" || e.name == "or") {
          Value left = Eval(*e.children[0], frame);
          if (left.Truthy() == (e.name == "or")) return left;
          return Eval(*e.children[1], frame);
        }
        const Value left = Eval(*e.children[0], frame);
        const Value right = Eval(*e.children[1], frame);
        line_ = e.line;
        return BinaryOp(e.name, left, right);
      }
      case Expr::Kind::kCompare: {
        Value left = Eval(*e.children[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = Eval(*e.children[i + 1], frame);
          const std::string& op = e.ops[i];
          bool r;
          if (op == "==")
            r = ValuesEqual(left, right);
          else if (op == "!=")
            r = !ValuesEqual(left, right);
          else if (op == "<")
            r = ValueLess(left, right);
          else if (op == ">")
            r = ValueLess(right, left);
          else if (op == "<=")
            r = !ValueLess(right, left);
          else if (op == ">=")
            r = !ValueLess(left, right);
          else if (op == "in")
            r = Contains(right, left);
          else
            r = !Contains(right, left);
          if (!r) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kCond:
        if (Eval(*e.children[0], frame).Truthy()) return Eval(*e.children[1], frame);
        return e.children[2] ? Eval(*e.children[2], frame) : Value(Undefined{});
    }
    return Value();
  }

  const Value& context_;
  const RenderLimits& limits_;
  DictData globals_;
  const Frame* root_ = nullptr;
  int64_t steps_ = 0;
  int depth_ = 0;
  int line_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> Template::Compile(std::string_view source) {
  try {
    return std::unique_ptr<Template>(new Template(Parse(Tokenize(source))));
  } catch (const JinjaError& e) {
    if (e.kind() == JinjaError::Kind::kUnsupported) {
      return absl::UnimplementedError(absl::StrCat("chat template: ", e.what()));
    }
    return absl::InvalidArgumentError(absl::StrCat("chat template syntax error: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("chat template: out of memory while compiling");
  } catch (const std::exception& e) {
    // Only the template's text can lead here (the parser has no other
    // input), so it is the template's problem, not an internal one.
    return absl::InvalidArgumentError(absl::StrCat("chat template cannot be compiled: ", e.what()));
  }
}

absl::StatusOr<std::string> Template::Render(const Value& context,
                                             const RenderLimits& limits) const {
  if (!context.is_dict()) return absl::InvalidArgumentError("template context must be a dict");
  Renderer renderer(context, limits);
  std::string out;
  try {
    renderer.Run(body_, &out);
  } catch (const JinjaError& e) {
    switch (e.kind()) {
      case JinjaError::Kind::kRaised:
        return absl::InvalidArgumentError(e.what());
      case JinjaError::Kind::kLimit:
        return absl::InvalidArgumentError(
            absl::StrCat("chat template line ", renderer.line(), ": ", e.what()));
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("chat template error at line ", renderer.line(), ": ", e.what()));
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("chat template line ", renderer.line(), ": out of memory"));
  } catch (const std::exception& e) {
    // A standard-library failure on a value the template built or was given
    // (std::length_error, std::out_of_range...): the template and its inputs
    // caused it, so the caller gets InvalidArgument naming the line.
    return absl::InvalidArgumentError(
        absl::StrCat("chat template error at line ", renderer.line(), ": ", e.what()));
  }
  return out;
}

}  // namespace muserve::jinja
