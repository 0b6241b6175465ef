// CUDA binding of mmclip::attention_guided_mask.
//
// ATen side of the CUDA kernel, behind the backend-independent front of backend_entry.h
// (check_<op>_inputs, contiguous inputs, outputs): the kernels' size limits (naming the
// argument), device guard, current stream, workspace allocation and dtype dispatch, then
// the torch-free launcher of kernels.h. Nothing here synchronises with the device: the
// value checks the CPU kernels make are made by the Python wrappers on every device
// (docs/cuda.md).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../backend_entry.h"
#include "binding_utils.h"
#include "kernels.h"

namespace mmclip {
namespace {

using namespace binding;  // check_cuda, current_stream, kernel_dtype, workspace, ...

void attention_guided_mask_cuda(const GuidedMaskTensors& t) {
  check_cuda(t.scores, "scores");
  const c10::cuda::CUDAGuard guard(t.scores.device());
  const int64_t batch = t.scores.size(0), patches = t.scores.size(1);
  check_int32_size(batch, "scores.size(0) (batch)");
  check_int32_size(patches, "scores.size(1) (patches)");
  if (batch == 0 || patches == 0) return;
  C10_CUDA_CHECK(cuda::launch_attention_guided_mask(
      t.scores.data_ptr(), t.noise.data_ptr<float>(), t.keep_idx.data_ptr<int64_t>(),
      t.mask_idx.data_ptr<int64_t>(), t.mask.data_ptr<bool>(), batch, patches, t.n_mask, t.tau,
      kernel_dtype(t.scores, "scores"), current_stream()));
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CUDA, m) {
  m.impl("attention_guided_mask", &attention_guided_mask_op<attention_guided_mask_cuda>);
}

}  // namespace mmclip
