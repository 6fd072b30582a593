#include "bench/loadgen/compare.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace muserve::loadgen {
namespace {

using nlohmann::json;

// Every number under `value`, by its dotted path ("ttft_ms.p50",
// "turns[1].cached_fraction"), in document order.
void Flatten(const json& value, const std::string& path,
             std::vector<std::pair<std::string, double>>& out) {
  if (value.is_number()) {
    out.emplace_back(path, value.get<double>());
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      Flatten(item, path.empty() ? key : absl::StrCat(path, ".", key), out);
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i)
      Flatten(value[i], absl::StrCat(path, "[", i, "]"), out);
  }
}

absl::Status CheckResult(const json& result, const char* side) {
  if (!result.is_object() || result.value("format", "") != "muserve-bench/1" ||
      !result.contains("points") || !result["points"].is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(side, " is not a muserve bench result (no \"format\": \"muserve-bench/1\")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  json parsed = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not valid JSON"));
  }
  return parsed;
}

std::string Ratio(double a, double b) {
  if (a == 0) return b == 0 ? "1" : "-";
  return absl::StrFormat("%.3f", b / a);
}

}  // namespace

absl::StatusOr<std::string> CompareResults(const json& a, const json& b) {
  if (absl::Status checked = CheckResult(a, "A"); !checked.ok()) return checked;
  if (absl::Status checked = CheckResult(b, "B"); !checked.ok()) return checked;
  std::string out = absl::StrFormat("A: %s, %s\nB: %s, %s\n", a.value("started_at", "?"),
                                    a.value("workload", "?"), b.value("started_at", "?"),
                                    b.value("workload", "?"));
  std::string differences;
  for (const char* section : {"config", "model"}) {
    const json empty = json::object();
    const json& sa = a.contains(section) ? a[section] : empty;
    const json& sb = b.contains(section) ? b[section] : empty;
    for (const auto& [key, value] : sa.items()) {
      if (!sb.contains(key) || sb[key] != value) {
        absl::StrAppend(&differences, "  ", section, ".", key, ": ", value.dump(), " vs ",
                        sb.contains(key) ? sb[key].dump() : "(absent)", "\n");
      }
    }
  }
  out += differences.empty() ? "same configuration\n"
                             : "configuration differences (A vs B):\n" + differences;
  const json& pa = a["points"];
  const json& pb = b["points"];
  if (pa.size() != pb.size()) {
    absl::StrAppendFormat(&out, "A has %d load points, B %d; comparing the first %d\n", pa.size(),
                          pb.size(), std::min(pa.size(), pb.size()));
  }
  for (size_t i = 0; i < std::min(pa.size(), pb.size()); ++i) {
    absl::StrAppendFormat(&out, "\npoint %d: %s vs %s\n", i + 1, pa[i]["load"].value("label", "?"),
                          pb[i]["load"].value("label", "?"));
    absl::StrAppendFormat(&out, "  %-36s %14s %14s %9s\n", "figure", "A", "B", "B/A");
    std::vector<std::pair<std::string, double>> fa, fb;
    Flatten(pa[i].value("figures", json::object()), "", fa);
    Flatten(pb[i].value("figures", json::object()), "", fb);
    std::map<std::string, double> b_values(fb.begin(), fb.end());
    for (const auto& [key, value_a] : fa) {
      const auto found = b_values.find(key);
      if (found == b_values.end()) continue;
      absl::StrAppendFormat(&out, "  %-36s %14.4g %14.4g %9s\n", key, value_a, found->second,
                            Ratio(value_a, found->second));
    }
  }
  return out;
}

absl::StatusOr<std::string> CompareResultFiles(const std::filesystem::path& a,
                                               const std::filesystem::path& b) {
  auto ja = ReadJson(a);
  if (!ja.ok()) return ja.status();
  auto jb = ReadJson(b);
  if (!jb.ok()) return jb.status();
  auto compared = CompareResults(*ja, *jb);
  if (!compared.ok()) {
    return absl::Status(
        compared.status().code(),
        absl::StrCat(compared.status().message(), " (A = ", a.string(), ", B = ", b.string(), ")"));
  }
  return compared;
}

}  // namespace muserve::loadgen
