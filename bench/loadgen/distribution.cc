#include "bench/loadgen/distribution.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/api/absl_string_view.h"

namespace muserve::loadgen {
namespace {

absl::Status Invalid(std::string_view flag, std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "--", AsAbsl(flag), " must be N, fixed:N, uniform:MIN:MAX or normal:MEAN:STDDEV (",
      AsAbsl(why), "), got '", AsAbsl(text), "'"));
}

}  // namespace

LengthDistribution LengthDistribution::Fixed(int32_t length) {
  LengthDistribution d;
  d.kind_ = Kind::kFixed;
  d.a_ = std::max(1, length);
  return d;
}

absl::StatusOr<LengthDistribution> LengthDistribution::Parse(std::string_view flag,
                                                             std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(AsAbsl(text), ':');
  if (parts.size() == 1) parts.insert(parts.begin(), "fixed");
  std::vector<double> values;
  for (size_t i = 1; i < parts.size(); ++i) {
    double value = 0;
    if (!absl::SimpleAtod(parts[i], &value) || !std::isfinite(value)) {
      return Invalid(flag, text, absl::StrCat("'", parts[i], "' is not a number"));
    }
    values.push_back(value);
  }
  LengthDistribution d;
  if (parts[0] == "fixed" && values.size() == 1) {
    d.kind_ = Kind::kFixed;
    d.a_ = values[0];
    if (d.a_ < 1 || d.a_ != std::floor(d.a_))
      return Invalid(flag, text, "N must be an integer >= 1");
  } else if (parts[0] == "uniform" && values.size() == 2) {
    d.kind_ = Kind::kUniform;
    d.a_ = values[0];
    d.b_ = values[1];
    if (d.a_ < 1 || d.b_ < d.a_ || d.a_ != std::floor(d.a_) || d.b_ != std::floor(d.b_)) {
      return Invalid(flag, text, "need integers 1 <= MIN <= MAX");
    }
  } else if (parts[0] == "normal" && values.size() == 2) {
    d.kind_ = Kind::kNormal;
    d.a_ = values[0];
    d.b_ = values[1];
    if (d.a_ < 1 || d.b_ < 0) return Invalid(flag, text, "need MEAN >= 1 and STDDEV >= 0");
  } else {
    return Invalid(flag, text, "unknown form");
  }
  return d;
}

int32_t LengthDistribution::Sample(std::mt19937_64& rng) const {
  switch (kind_) {
    case Kind::kFixed:
      return static_cast<int32_t>(a_);
    case Kind::kUniform:
      return static_cast<int32_t>(std::uniform_int_distribution<int64_t>(
          static_cast<int64_t>(a_), static_cast<int64_t>(b_))(rng));
    case Kind::kNormal: {
      const double drawn = std::round(std::normal_distribution<double>(a_, b_)(rng));
      return static_cast<int32_t>(std::clamp(drawn, 1.0, static_cast<double>(UpperBound())));
    }
  }
  return 1;
}

int32_t LengthDistribution::UpperBound() const {
  switch (kind_) {
    case Kind::kFixed:
      return static_cast<int32_t>(a_);
    case Kind::kUniform:
      return static_cast<int32_t>(b_);
    case Kind::kNormal:
      return static_cast<int32_t>(std::max(1.0, std::round(a_ + 4 * b_)));
  }
  return 1;
}

std::string LengthDistribution::ToString() const {
  switch (kind_) {
    case Kind::kFixed:
      return absl::StrCat("fixed:", a_);
    case Kind::kUniform:
      return absl::StrCat("uniform:", a_, ":", b_);
    case Kind::kNormal:
      return absl::StrCat("normal:", a_, ":", b_);
  }
  return "";
}

}  // namespace muserve::loadgen
