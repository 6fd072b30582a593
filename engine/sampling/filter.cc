// Sampler::Filter: temperature, then top_k, min_p and top_p on a candidate
// list, without sorting the vocabulary. top_k and min_p are both "logit >= a
// cut that never excludes the maximum", so they commute and top_k runs first
// (it shrinks the list cheapest); top_p renormalises over what they leave.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <optional>

#include "engine/api/check.h"
#include "engine/sampling/fast_exp.h"
#include "engine/sampling/sampler.h"

namespace muserve {
namespace {

// Most likely first; lowest id first on ties, so every cut is deterministic.
// A function object (not a function pointer) so that the sorts inline it.
struct ByRank {
  bool operator()(const SamplingCandidate& a, const SamplingCandidate& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
  }
};

// transformers' TopKLogitsWarper: keeps every logit >= the k-th largest
// (ties at the k-th value all survive). Returns whether it reordered.
bool KeepTopK(std::vector<SamplingCandidate>& candidates, int32_t top_k) {
  const size_t k = static_cast<size_t>(top_k);
  if (top_k <= 0 || k >= candidates.size()) return false;
  std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end(), ByRank());
  const float kth = candidates[k - 1].logit;
  const auto end = std::partition(candidates.begin() + k, candidates.end(),
                                  [kth](const SamplingCandidate& c) { return c.logit >= kth; });
  candidates.erase(end, candidates.end());
  return true;
}

// transformers' MinPLogitsWarper drops p < min_p * p_max, i.e.
// logit < max + log(min_p) after temperature. Stable: keeps the order.
void KeepMinP(std::vector<SamplingCandidate>& candidates, float min_p, float max_logit) {
  if (min_p <= 0.0f) return;
  const float cut = max_logit + std::log(min_p);
  std::erase_if(candidates, [cut](const SamplingCandidate& c) { return c.logit < cut; });
}

// transformers' TopPLogitsWarper keeps a token when the mass strictly more
// likely than it is < top_p: the most likely tokens up to and including the
// one whose cumulative mass reaches top_p. Sorts only a growing prefix (the
// nucleus is usually small): the top m by nth_element, m x4 until it holds
// the nucleus. Returns whether it reordered.
bool KeepTopP(std::vector<SamplingCandidate>& candidates, float top_p, float max_logit) {
  size_t n = candidates.size();
  if (top_p >= 1.0f || n <= 1) return false;
  double total = 0;
  for (const SamplingCandidate& c : candidates) {
    total += sampling_internal::ExpNonPositive(c.logit - max_logit);
  }
  const double target = static_cast<double>(top_p) * total;
  // Tokens below half of (1 - top_p) / n of the mass hold less than half of
  // 1 - top_p between them, so every one of them is outside the nucleus:
  // dropping them first (stable, O(n)) leaves the selection below a much
  // shorter list on long-tailed distributions.
  const double floor_weight = 0.5 * (1.0 - static_cast<double>(top_p)) * total / n;
  if (floor_weight > 0) {
    const float cut = max_logit + static_cast<float>(std::log(floor_weight));
    std::erase_if(candidates, [cut](const SamplingCandidate& c) { return c.logit < cut; });
  }
  n = candidates.size();
  size_t keep = n;
  for (size_t m = std::min<size_t>(n, 64);; m = std::min(n, m * 4)) {
    if (m < n) {
      std::nth_element(candidates.begin(), candidates.begin() + (m - 1), candidates.end(),
                       ByRank());
    }
    std::sort(candidates.begin(), candidates.begin() + m, ByRank());
    double cumulative = 0;
    size_t r = 0;
    while (r < m && cumulative < target)
      cumulative += sampling_internal::ExpNonPositive(candidates[r++].logit - max_logit);
    if (cumulative >= target || m == n) {
      keep = std::max<size_t>(r, 1);
      break;
    }
  }
  candidates.resize(keep);
  return true;
}

}  // namespace

// The k-th largest unmasked logit, by one pass keeping a min-heap of the k
// largest so far (almost every logit fails the first comparison, so the pass
// does no writes); nullopt when fewer than k logits are unmasked.
std::optional<float> Sampler::KthLargest(std::span<const float> logits, size_t k) {
  heap_.clear();
  const std::greater<float> min_heap;
  for (float v : logits) {
    if (heap_.size() < k) {
      if (!(v > -std::numeric_limits<float>::infinity())) continue;  // Masked or NaN.
      heap_.push_back(v);
      std::push_heap(heap_.begin(), heap_.end(), min_heap);
    } else if (v > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), min_heap);
      heap_.back() = v;
      std::push_heap(heap_.begin(), heap_.end(), min_heap);
    }
  }
  if (heap_.size() < k) return std::nullopt;
  return heap_.front();
}

std::span<const SamplingCandidate> Sampler::Filter(std::span<const float> logits,
                                                   const SamplingParams& params) {
  MUSERVE_CHECK(params.temperature >= kGreedyTemperature);
  // A small top_k selects its candidates before building the list: only
  // tokens whose scaled logit reaches the k-th largest one's (ties, including
  // those the division's rounding makes, survive as in TopKLogitsWarper, which
  // runs after the temperature; division by T > 0 preserves order).
  constexpr int32_t kMaxHeapTopK = 1024;
  float cut = -std::numeric_limits<float>::infinity();
  bool top_k_done = false;
  if (params.top_k > 0 && params.top_k <= kMaxHeapTopK &&
      static_cast<size_t>(params.top_k) < logits.size()) {
    if (const std::optional<float> kth = KthLargest(logits, params.top_k); kth.has_value()) {
      cut = *kth / params.temperature;
      top_k_done = true;
    }
  }
  candidates_.clear();
  float max_logit = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    // A float division, as transformers' TemperatureLogitsWarper and vLLM.
    const float scaled = logits[i] / params.temperature;
    // !(x > -inf) masks NaN too.
    if (!(scaled > -std::numeric_limits<float>::infinity()) || scaled < cut) continue;
    candidates_.push_back({scaled, static_cast<int32_t>(i)});
    if (scaled > max_logit) max_logit = scaled;
  }
  // None of the filters removes the maximum, so max_logit stays valid.
  bool reordered = !top_k_done && KeepTopK(candidates_, params.top_k);
  KeepMinP(candidates_, params.min_p, max_logit);
  reordered = KeepTopP(candidates_, params.top_p, max_logit) || reordered;
  // The draw scans in id order, so the token drawn for a given uniform does
  // not depend on how the selection above happened to permute the list.
  if (reordered) {
    std::sort(
        candidates_.begin(), candidates_.end(),
        [](const SamplingCandidate& a, const SamplingCandidate& b) { return a.token < b.token; });
  }
  return candidates_;
}

}  // namespace muserve
