#include "bench/loadgen/compare.h"

#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace muserve::loadgen {
namespace {

using nlohmann::json;

// Every number (or null: a figure without samples) under `value`, by its
// dotted path ("ttft_ms.p50", "turns[1].cached_fraction"), in document order.
using Figure = std::pair<std::string, std::optional<double>>;

void Flatten(const json& value, const std::string& path, std::vector<Figure>& out) {
  if (value.is_number()) {
    out.emplace_back(path, value.get<double>());
  } else if (value.is_null()) {
    out.emplace_back(path, std::nullopt);
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      Flatten(item, path.empty() ? key : absl::StrCat(path, ".", key), out);
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i)
      Flatten(value[i], absl::StrCat(path, "[", i, "]"), out);
  }
}

// A load point's identity: its mode and value, so that sweeps of different
// lengths or orders still line up.
std::string PointKey(const json& point) {
  const json load = point.value("load", json::object());
  return absl::StrCat(load.value("mode", "?"), " ",
                      load.contains("value") ? load["value"].dump() : "?");
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

// Figures of one point side by side: every figure of either side, A's order
// first. An error code one side never saw counts 0 there; any other figure
// one side lacks is "(absent)", a figure without samples "null".
std::string CompareFigures(const json& a, const json& b) {
  std::vector<Figure> fa, fb;
  Flatten(a, "", fa);
  Flatten(b, "", fb);
  std::map<std::string, std::optional<double>> va(fa.begin(), fa.end());
  std::map<std::string, std::optional<double>> vb(fb.begin(), fb.end());
  std::vector<std::string> keys;
  for (const auto& [key, value] : fa) keys.push_back(key);
  for (const auto& [key, value] : fb) {
    if (!va.contains(key)) keys.push_back(key);
  }
  std::string out = absl::StrFormat("  %-36s %14s %14s %9s\n", "figure", "A", "B", "B/A");
  for (const std::string& key : keys) {
    const bool error_count = key.starts_with("errors_by_code.");
    const auto side = [&](const std::map<std::string, std::optional<double>>& values)
        -> std::pair<std::string, std::optional<double>> {
      const auto found = values.find(key);
      if (found == values.end()) {
        if (error_count) return {"0", 0.0};
        return {"(absent)", std::nullopt};
      }
      if (!found->second) return {"null", std::nullopt};
      return {absl::StrFormat("%.4g", *found->second), found->second};
    };
    const auto [text_a, value_a] = side(va);
    const auto [text_b, value_b] = side(vb);
    const std::string ratio = value_a && value_b ? Ratio(*value_a, *value_b) : "-";
    absl::StrAppendFormat(&out, "  %-36s %14s %14s %9s\n", key, text_a, text_b, ratio);
  }
  return out;
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
    for (const auto& [key, value] : sb.items()) {
      if (!sa.contains(key)) {
        absl::StrAppend(&differences, "  ", section, ".", key, ": (absent) vs ", value.dump(),
                        "\n");
      }
    }
  }
  out += differences.empty() ? "same configuration\n"
                             : "configuration differences (A vs B):\n" + differences;
  const json& pa = a["points"];
  const json& pb = b["points"];
  std::map<std::string, size_t> b_index;
  for (size_t i = 0; i < pb.size(); ++i) b_index.emplace(PointKey(pb[i]), i);
  std::vector<std::string> only_a, only_b;
  std::set<size_t> matched_b;
  for (size_t i = 0; i < pa.size(); ++i) {
    const auto found = b_index.find(PointKey(pa[i]));
    const std::string label = pa[i].value("load", json::object()).value("label", "?");
    if (found == b_index.end() || matched_b.contains(found->second)) {
      only_a.push_back(label);
      continue;
    }
    matched_b.insert(found->second);
    absl::StrAppendFormat(&out, "\n%s\n", label);
    out += CompareFigures(pa[i].value("figures", json::object()),
                          pb[found->second].value("figures", json::object()));
  }
  for (size_t i = 0; i < pb.size(); ++i) {
    if (!matched_b.contains(i)) {
      only_b.push_back(pb[i].value("load", json::object()).value("label", "?"));
    }
  }
  if (!only_a.empty()) absl::StrAppend(&out, "\nonly in A: ", absl::StrJoin(only_a, ", "), "\n");
  if (!only_b.empty()) absl::StrAppend(&out, "\nonly in B: ", absl::StrJoin(only_b, ", "), "\n");
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
