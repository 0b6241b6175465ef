// CUDA binding of mmclip::attention_guided_mask.
//
// ATen side of the CUDA kernel: argument checks (the backend-independent
// check_<op>_inputs, then the kernels' size limits, naming the argument), device guard,
// current stream, output / workspace allocation and dtype dispatch, then the torch-free
// launcher of kernels.h. Nothing here synchronises with the device: the value checks the
// CPU kernels make are made by the Python wrappers on every device (docs/cuda.md).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "../operator_decls.h"
#include "binding_utils.h"
#include "kernels.h"

namespace mmclip {
namespace {

using namespace binding;  // check_cuda, current_stream, kernel_dtype, workspace, ...

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_guided_mask_cuda(const at::Tensor& scores,
                                                                          const at::Tensor& noise,
                                                                          int64_t n_mask,
                                                                          double tau) {
  check_attention_guided_mask_inputs(scores, noise, n_mask, tau);
  check_cuda(scores, "scores");
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t batch = scores.size(0), patches = scores.size(1);
  check_int32_size(batch, "scores.size(0) (batch)");
  check_int32_size(patches, "scores.size(1) (patches)");
  const auto long_opts = scores.options().dtype(at::kLong);
  auto keep_idx = at::empty({batch, patches - n_mask}, long_opts);
  auto mask_idx = at::empty({batch, n_mask}, long_opts);
  auto mask = at::empty({batch, patches}, scores.options().dtype(at::kBool));
  if (batch == 0 || patches == 0) return {keep_idx, mask_idx, mask};
  const auto s = scores.contiguous();
  const auto u = noise.contiguous();
  C10_CUDA_CHECK(cuda::launch_attention_guided_mask(
      s.data_ptr(), u.data_ptr<float>(), keep_idx.data_ptr<int64_t>(), mask_idx.data_ptr<int64_t>(),
      mask.data_ptr<bool>(), batch, patches, n_mask, tau, kernel_dtype(scores, "scores"),
      current_stream()));
  return {keep_idx, mask_idx, mask};
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CUDA, m) {
  m.impl("attention_guided_mask", &attention_guided_mask_cuda);
}

}  // namespace mmclip
