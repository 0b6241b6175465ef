// CUDA bindings of mmclip::masked_gather / masked_scatter and their backward ops.
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

// The backward and scatter kernels keep a row's position j in an int workspace.
void check_index_count(int64_t count, const char* what) {
  TORCH_CHECK(count <= 0x7f000000LL, what, " is ", count,
              ", above the CUDA kernels' limit of 2130706432 indices per sample");
}

at::Tensor masked_gather_cuda(const at::Tensor& x, const at::Tensor& idx) {
  check_masked_gather_inputs(x, idx);
  check_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t batch = x.size(0), patches = x.size(1), dim = x.size(2), count = idx.size(1);
  auto out = at::empty({batch, count, dim}, x.options());
  if (out.numel() == 0) return out;
  const auto x_c = x.contiguous();
  const auto idx_c = idx.contiguous();
  C10_CUDA_CHECK(cuda::launch_masked_gather(x_c.data_ptr(), idx_c.data_ptr<int64_t>(),
                                            out.data_ptr(), batch, patches, count, dim,
                                            kernel_dtype(x, "x"), current_stream()));
  return out;
}

at::Tensor masked_gather_backward_cuda(const at::Tensor& grad, const at::Tensor& idx,
                                       int64_t num_patches) {
  check_masked_gather_backward_inputs(grad, idx, num_patches);
  check_cuda(grad, "grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t batch = grad.size(0), count = grad.size(1), dim = grad.size(2);
  check_index_count(count, "idx.size(1)");
  auto out = at::empty({batch, num_patches, dim}, grad.options());  // every row is written
  if (out.numel() == 0) return out;
  const auto g_c = grad.contiguous();
  const auto idx_c = idx.contiguous();
  auto ws = workspace(cuda::masked_gather_backward_workspace_bytes(batch, num_patches), grad);
  C10_CUDA_CHECK(cuda::launch_masked_gather_backward(
      g_c.data_ptr(), idx_c.data_ptr<int64_t>(), out.data_ptr(), ws.data_ptr(), batch, count,
      num_patches, dim, kernel_dtype(grad, "grad"), current_stream()));
  return out;
}

at::Tensor masked_scatter_cuda(const at::Tensor& visible, const at::Tensor& keep_idx,
                               const at::Tensor& mask_token, int64_t num_patches) {
  check_masked_scatter_inputs(visible, keep_idx, mask_token, num_patches);
  check_cuda(visible, "visible");
  const c10::cuda::CUDAGuard guard(visible.device());
  const int64_t batch = visible.size(0), count = visible.size(1), dim = visible.size(2);
  check_index_count(count, "keep_idx.size(1)");
  auto out = at::empty({batch, num_patches, dim}, visible.options());  // every row is written
  if (out.numel() == 0) return out;
  const auto v_c = visible.contiguous();
  const auto idx_c = keep_idx.contiguous();
  const auto t_c = mask_token.contiguous();
  auto ws = workspace(cuda::masked_scatter_workspace_bytes(batch, num_patches), visible);
  C10_CUDA_CHECK(cuda::launch_masked_scatter(
      v_c.data_ptr(), idx_c.data_ptr<int64_t>(), t_c.data_ptr(), out.data_ptr(), ws.data_ptr(),
      batch, count, num_patches, dim, kernel_dtype(visible, "visible"), current_stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> masked_scatter_backward_cuda(const at::Tensor& grad,
                                                                const at::Tensor& keep_idx) {
  check_masked_scatter_backward_inputs(grad, keep_idx);
  check_cuda(grad, "grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t batch = grad.size(0), patches = grad.size(1), dim = grad.size(2);
  const int64_t count = keep_idx.size(1);
  check_index_count(count, "keep_idx.size(1)");
  auto grad_visible = at::empty({batch, count, dim}, grad.options());
  if (dim == 0) return {grad_visible, at::zeros({dim}, grad.options())};
  auto grad_token = at::empty({dim}, grad.options());  // written even when batch == 0
  const auto g_c = grad.contiguous();
  const auto idx_c = keep_idx.contiguous();
  const auto dtype = kernel_dtype(grad, "grad");
  auto ws = workspace(cuda::masked_scatter_backward_workspace_bytes(batch, patches, dim, dtype),
                      grad);
  C10_CUDA_CHECK(cuda::launch_masked_scatter_backward(
      g_c.data_ptr(), idx_c.data_ptr<int64_t>(), grad_visible.data_ptr(), grad_token.data_ptr(),
      ws.data_ptr(), batch, patches, count, dim, dtype, current_stream()));
  return {grad_visible, grad_token};
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CUDA, m) {
  m.impl("masked_gather", &masked_gather_cuda);
  m.impl("masked_gather_backward", &masked_gather_backward_cuda);
  m.impl("masked_scatter", &masked_scatter_cuda);
  m.impl("masked_scatter_backward", &masked_scatter_backward_cuda);
}

}  // namespace mmclip
