// Token-length distributions of synthetic workloads, parsed from flag text:
//   "128" or "fixed:128"      always 128
//   "uniform:64:256"          an integer drawn uniformly from [64, 256]
//   "normal:128:32"           round(N(mean 128, stddev 32)), clamped to >= 1
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace muserve::loadgen {

class LengthDistribution {
 public:
  enum class Kind { kFixed, kUniform, kNormal };

  // INVALID_ARGUMENT naming `flag` when `text` is not one of the forms above
  // or a length is below 1.
  static absl::StatusOr<LengthDistribution> Parse(std::string_view flag, std::string_view text);
  static LengthDistribution Fixed(int32_t length);

  // Always >= 1.
  int32_t Sample(std::mt19937_64& rng) const;
  // The largest value Sample can return; for a normal distribution, mean + 4
  // standard deviations (drawn values are clamped to it, so that a workload's
  // context check holds for every draw).
  int32_t UpperBound() const;
  // The form Parse reads, e.g. "uniform:64:256".
  std::string ToString() const;

  Kind kind() const { return kind_; }

 private:
  Kind kind_ = Kind::kFixed;
  double a_ = 1;  // fixed: the length; uniform: min; normal: mean
  double b_ = 1;  // uniform: max; normal: stddev
};

}  // namespace muserve::loadgen
