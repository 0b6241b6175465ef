// CUDA binding of mmclip::cross_modal_attention_score.
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

#include "../checks.h"
#include "../operator_decls.h"
#include "binding_utils.h"
#include "kernels.h"

namespace mmclip {
namespace {

using namespace binding;  // check_cuda, current_stream, kernel_dtype, workspace, ...

at::Tensor cross_modal_attention_score_cuda(const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& weight, double scale) {
  check_cross_modal_attention_score_inputs(q, k, weight);
  check_cuda(q, "q");
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t batch = q.size(0), tokens = q.size(1), patches = k.size(1), dim = q.size(2);
  check_int32_size(batch, "q.size(0) (batch)");
  check_int32_size(tokens, "q.size(1) (tokens)");
  check_int32_size(patches, "k.size(1) (patches)");
  // one thread block per 16 tokens of a sample at the most
  check_int32_size(batch * ((tokens + 15) / 16), "q.size(0) * ceil(q.size(1) / 16) (thread blocks)");
  auto out = at::empty({batch, patches}, q.options().dtype(at::kFloat));
  if (batch == 0 || patches == 0) return out;
  const auto q_c = q.contiguous();
  const auto k_c = k.contiguous();
  // Row maxima of 1 (divided on the device): the kernels' float32 sums of
  // weights and weighted probabilities stay <= T and cannot overflow.
  const auto w = normalized_attention_weights(weight);
  auto ws = workspace(cuda::cross_modal_attention_score_workspace_bytes(batch, tokens, patches), q);
  C10_CUDA_CHECK(cuda::launch_cross_modal_attention_score(
      q_c.data_ptr(), k_c.data_ptr(), w.data_ptr<float>(), out.data_ptr<float>(), ws.data_ptr(),
      batch, tokens, patches, dim, static_cast<float>(scale), kernel_dtype(q, "q"),
      current_stream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CUDA, m) {
  m.impl("cross_modal_attention_score", &cross_modal_attention_score_cuda);
}

}  // namespace mmclip
