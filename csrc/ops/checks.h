// Argument checks shared by every backend of the mmclip operators.
// Each failed check raises c10::Error (RuntimeError in Python) naming the argument.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>

namespace mmclip {

inline void check_rank(const at::Tensor& t, const char* name, int64_t rank) {
  TORCH_CHECK(t.dim() == rank, name, " must have ", rank, " dimensions, got shape ", t.sizes());
}

inline void check_same_device(const at::Tensor& ref, const char* ref_name, const at::Tensor& t,
                              const char* name) {
  TORCH_CHECK(t.device() == ref.device(), name, " is on ", t.device(), " but ", ref_name, " is on ",
              ref.device(), "; all inputs must be on one device");
}

inline void check_dtype(const at::Tensor& t, const char* name, at::ScalarType expected) {
  TORCH_CHECK(t.scalar_type() == expected, name, " must have dtype ", expected, ", got ",
              t.scalar_type());
}

inline void check_floating(const at::Tensor& t, const char* name) {
  const auto s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, name,
              " must have dtype float32, float64, float16 or bfloat16, got ", s);
}

inline void check_size(const at::Tensor& t, const char* name, int64_t dim, int64_t expected,
                       const char* why) {
  TORCH_CHECK(t.size(dim) == expected, name, ".shape[", dim, "] must be ", expected, " (", why,
              "), got shape ", t.sizes());
}

inline void check_ratio(double value, const char* name) {
  TORCH_CHECK(value >= 0.0 && value <= 1.0, name, " must lie in [0, 1], got ", value);
}

}  // namespace mmclip
