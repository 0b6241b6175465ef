// Shared ATen-side helpers of the per-op CUDA bindings (<op>_binding.cpp): the kernel
// dtype tag, the current stream, workspace allocation and the argument checks that turn
// the launchers' size limits into errors naming the argument.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels.h"

namespace mmclip {
namespace binding {

inline cuda::DType kernel_dtype(const at::Tensor& t, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return cuda::DType::F32;
    case at::kHalf:
      return cuda::DType::F16;
    case at::kBFloat16:
      return cuda::DType::BF16;
    case at::kDouble:
      return cuda::DType::F64;
    default:
      TORCH_CHECK(false, name, " must have dtype float32, float64, float16 or bfloat16, got ",
                  t.scalar_type());
  }
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// A device byte buffer of at least `bytes` (never empty, so its pointer is valid).
inline at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))},
                   like.options().dtype(at::kByte));
}

inline void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor, got device ", t.device());
}

// The kernels index a sample's rows and the grid's blocks with 32-bit integers.
inline void check_int32_size(int64_t value, const char* what) {
  TORCH_CHECK(value <= std::numeric_limits<int32_t>::max(), what, " is ", value,
              ", above the CUDA kernels' limit of 2^31 - 1");
}

}  // namespace binding
}  // namespace mmclip
