// Template: a compiled Jinja template. This is the public face of jinja/;
// errors inside the interpreter become absl::Status here and nothing throws
// past it.
//
// Thread safety: a compiled Template is immutable; Render may be called from
// many threads at once (each call has its own interpreter state).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tokenizer/jinja/ast.h"
#include "engine/tokenizer/jinja/value.h"

namespace muserve::jinja {

// Bounds on one render, so a hostile or buggy template fails with
// InvalidArgument naming the limit instead of hanging the server or
// exhausting memory. Not ResourceExhausted: the same template and inputs fail
// the same way every time, and gRPC clients treat RESOURCE_EXHAUSTED as a
// transient condition worth retrying.
struct RenderLimits {
  size_t max_output_bytes = 32 << 20;
  int max_call_depth = 64;        // nested macro calls
  int64_t max_steps = 5'000'000;  // statements executed + loop iterations
};

class Template {
 public:
  // Syntax errors are InvalidArgument; constructs this interpreter does not
  // implement are Unimplemented. Both name the line. Running out of memory is
  // ResourceExhausted; nothing is Internal.
  static absl::StatusOr<std::unique_ptr<Template>> Compile(std::string_view source);

  // `context` must be a dict; its entries are the template's variables, on
  // top of the globals (range, dict, namespace, raise_exception,
  // strftime_now). `raise_exception(msg)` becomes InvalidArgument(msg); other
  // runtime errors (including standard-library exceptions raised on the
  // template's values) and exceeding `limits` are InvalidArgument naming the
  // line; only running out of memory is ResourceExhausted. Nothing is
  // Internal and nothing throws.
  absl::StatusOr<std::string> Render(const Value& context, const RenderLimits& limits = {}) const;

 private:
  explicit Template(Body body) : body_(std::move(body)) {}
  Body body_;
};

}  // namespace muserve::jinja
