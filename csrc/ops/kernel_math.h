// Scalar rules shared by the CPU and CUDA kernels (no torch headers), so that every
// backend takes the same decisions from the same inputs.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MMCLIP_HOST_DEVICE __host__ __device__
#else
#define MMCLIP_HOST_DEVICE
#endif

namespace mmclip {

// Labels of tokens that are not predicted (PyTorch's cross-entropy ignore_index).
constexpr int64_t kIgnoreIndex = -100;
// BERT replacement: chosen tokens with action noise below these become [MASK] / random.
constexpr float kMaskTokenThreshold = 0.8f;
constexpr float kRandomTokenThreshold = 0.9f;
// Absorbs binary rounding of ratio * n before floor / ceil.
constexpr double kCountEps = 1e-9;

// Sort key of Gumbel-top-k for a score and its uniform noise (float64).
// tau == 0: the score itself; tau == inf: Gumbel noise only; NaN -> -inf.
MMCLIP_HOST_DEVICE inline double gumbel_key(double score, float noise, double tau) {
  double key;
  if (tau == 0.0) {
    key = score;
  } else {
    const double gumbel = -log(-log(static_cast<double>(noise)));
    key = tau == INFINITY ? gumbel : log(score) / tau + gumbel;
  }
  return key != key ? -INFINITY : key;  // NaN compares unequal to itself
}

// True when key a (at index ia) is masked before key b (at index ib): larger first,
// equal keys in index order.
MMCLIP_HOST_DEVICE inline bool key_before(double a, int64_t ia, double b, int64_t ib) {
  return a > b || (a == b && ia < ib);
}

// Token budget of entity_span_mask for a sample with n maskable tokens.
struct MaskBudget {
  int64_t target;
  int64_t max;
};

MMCLIP_HOST_DEVICE inline MaskBudget entity_mask_budget(int64_t n, double target_ratio,
                                                        double min_ratio, double max_ratio) {
  if (n <= 0) return {0, 0};
  const double nd = static_cast<double>(n);
  double hi = floor(max_ratio * nd + kCountEps);
  hi = hi < 1.0 ? 1.0 : hi;
  double lo = ceil(min_ratio * nd - kCountEps);
  lo = lo < 1.0 ? 1.0 : lo;
  lo = lo > hi ? hi : lo;
  double target = rint(target_ratio * nd);  // half to even, as torch.round
  target = target < lo ? lo : (target > hi ? hi : target);
  return {static_cast<int64_t>(target), static_cast<int64_t>(hi)};
}

// The id a chosen token takes: [MASK], the random id, or itself.
MMCLIP_HOST_DEVICE inline int64_t replacement_id(int64_t original, float action, int64_t random_id,
                                                 int64_t mask_token_id) {
  if (action < kMaskTokenThreshold) return mask_token_id;
  if (action < kRandomTokenThreshold) return random_id;
  return original;
}

}  // namespace mmclip
