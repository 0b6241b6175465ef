// Selection rules of the CUDA kernels as plain host/device functions (no torch, no
// CUDA runtime), so that a host program can run them (tests/ops/test_cuda_compile.py
// emulates the kernels' selection with them and compares with the PyTorch reference).
//
// Both selecting kernels choose "the n first elements" of a row under a total order
// given by (64-bit unsigned key descending, index ascending):
// * attention_guided_mask: key = ordered_bits(gumbel_key(...)), which orders exactly as
//   kernel_math.h's key_before() (larger key first, equal keys in index order);
// * entity_span_mask top-up: key = (candidate << 32) | ~ordered_bits(token_noise), so the
//   candidates with the smallest noise (ties: lower index) come first, as the CPU's
//   nth_element with (noise, index) ascending; non-candidates have key < 2^32 and come
//   after every candidate.
// The n-th key is found by a most-significant-digit radix select (8 bits per pass);
// the elements strictly above it are all taken and the `take_equal` lowest-index
// elements equal to it complete the count.
#pragma once

#include <cstdint>
#include <cstring>

#include "../kernel_math.h"

namespace mmclip {
namespace cuda {

constexpr int kRadixBits = 8;
constexpr int kRadixBins = 1 << kRadixBits;
constexpr int kKeyBits = 64;

MMCLIP_HOST_DEVICE inline uint64_t double_bits(double v) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(v));
#else
  uint64_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u;
#endif
}

MMCLIP_HOST_DEVICE inline uint32_t float_bits(float v) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__float_as_uint(v));
#else
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return u;
#endif
}

// Order-preserving map of a non-NaN double to uint64: a > b <=> f(a) > f(b) and
// a == b <=> f(a) == f(b) (so -0.0 and +0.0 map to the same value, as they compare
// equal).
MMCLIP_HOST_DEVICE inline uint64_t ordered_bits(double v) {
  if (v == 0.0) v = 0.0;  // -0.0 -> +0.0
  const uint64_t u = double_bits(v);
  return (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
}

MMCLIP_HOST_DEVICE inline uint32_t ordered_bits(float v) {
  if (v == 0.0f) v = 0.0f;
  const uint32_t u = float_bits(v);
  return (u >> 31) ? ~u : (u | (uint32_t{1} << 31));
}

// Selection key of attention_guided_mask for one patch (NaN keys are -inf already).
MMCLIP_HOST_DEVICE inline uint64_t guided_mask_select_key(double score, float noise, double tau) {
  return ordered_bits(gumbel_key(score, noise, tau));
}

// Selection key of entity_span_mask's top-up for one token.
MMCLIP_HOST_DEVICE inline uint64_t entity_topup_select_key(bool candidate, float token_noise) {
  if (!candidate) return 0;
  return (uint64_t{1} << 32) | static_cast<uint64_t>(~ordered_bits(token_noise));
}

// One radix-select step: given the histogram of the current digit among the elements
// that still match the prefix, and `remaining` (1 <= remaining <= sum of hist) elements
// still to take, returns the digit of the remaining-th largest element and sets
// `above` to the count of elements in larger digits.
MMCLIP_HOST_DEVICE inline int radix_choose_digit(const int* hist, int remaining, int* above) {
  int acc = 0;
  for (int d = kRadixBins - 1; d >= 0; --d) {
    if (acc + hist[d] >= remaining) {
      *above = acc;
      return d;
    }
    acc += hist[d];
  }
  *above = acc;  // unreachable when the precondition holds
  return 0;
}

// Result of a selection: take every key > threshold and the `take_equal` lowest-index
// keys == threshold. `none` is set when nothing is taken (n == 0).
struct SelectThreshold {
  uint64_t threshold;
  int take_equal;
  bool none;
};

MMCLIP_HOST_DEVICE inline bool select_taken(const SelectThreshold& s, uint64_t key,
                                            int equal_rank) {
  return !s.none && (key > s.threshold || (key == s.threshold && equal_rank < s.take_equal));
}

}  // namespace cuda
}  // namespace mmclip
