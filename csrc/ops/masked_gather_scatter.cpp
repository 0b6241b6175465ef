// Schemas and argument checks of mmclip::masked_gather / masked_scatter and their
// backward operators. The four are each other's adjoints:
//   masked_gather(x[B,P,D], idx[B,K])                  -> [B,K,D],  out[b,j] = x[b, idx[b,j]]
//   masked_gather_backward(grad[B,K,D], idx, P)         -> [B,P,D],  scatter-add
//   masked_scatter(vis[B,K,D], keep_idx, token[D], P)   -> [B,P,D],  token where not kept
//   masked_scatter_backward(grad[B,P,D], keep_idx)      -> (grad_vis[B,K,D], grad_token[D])
// keep_idx rows must hold distinct indices.
#include "checks.h"
#include "operator_decls.h"

namespace mmclip {

void define_masked_gather_scatter(torch::Library& m) {
  m.def("masked_gather(Tensor x, Tensor idx) -> Tensor");
  m.def("masked_gather_backward(Tensor grad, Tensor idx, int num_patches) -> Tensor");
  m.def(
      "masked_scatter(Tensor visible, Tensor keep_idx, Tensor mask_token, int num_patches) -> "
      "Tensor");
  m.def(
      "masked_scatter_backward(Tensor grad, Tensor keep_idx) -> "
      "(Tensor grad_visible, Tensor grad_mask_token)");
}

namespace {
void check_index(const at::Tensor& ref, const char* ref_name, const at::Tensor& idx,
                 const char* idx_name) {
  check_rank(idx, idx_name, 2);
  check_dtype(idx, idx_name, at::kLong);
  check_same_device(ref, ref_name, idx, idx_name);
  check_size(idx, idx_name, 0, ref.size(0), "batch size");
}
}  // namespace

void check_masked_gather_inputs(const at::Tensor& x, const at::Tensor& idx) {
  check_rank(x, "x", 3);
  check_floating(x, "x");
  check_index(x, "x", idx, "idx");
}

void check_masked_gather_backward_inputs(const at::Tensor& grad, const at::Tensor& idx,
                                         int64_t num_patches) {
  check_rank(grad, "grad", 3);
  check_floating(grad, "grad");
  check_index(grad, "grad", idx, "idx");
  check_size(idx, "idx", 1, grad.size(1), "token count of grad");
  TORCH_CHECK(num_patches >= 0, "num_patches must be >= 0, got ", num_patches);
}

void check_masked_scatter_inputs(const at::Tensor& visible, const at::Tensor& keep_idx,
                                 const at::Tensor& mask_token, int64_t num_patches) {
  check_rank(visible, "visible", 3);
  check_floating(visible, "visible");
  check_index(visible, "visible", keep_idx, "keep_idx");
  check_size(keep_idx, "keep_idx", 1, visible.size(1), "token count of visible");
  check_rank(mask_token, "mask_token", 1);
  check_same_device(visible, "visible", mask_token, "mask_token");
  TORCH_CHECK(mask_token.scalar_type() == visible.scalar_type(),
              "mask_token must have the dtype of visible (", visible.scalar_type(), "), got ",
              mask_token.scalar_type());
  check_size(mask_token, "mask_token", 0, visible.size(2), "feature size of visible");
  TORCH_CHECK(num_patches >= visible.size(1), "num_patches must be >= the ", visible.size(1),
              " visible tokens, got ", num_patches);
}

void check_masked_scatter_backward_inputs(const at::Tensor& grad, const at::Tensor& keep_idx) {
  check_rank(grad, "grad", 3);
  check_floating(grad, "grad");
  check_index(grad, "grad", keep_idx, "keep_idx");
  TORCH_CHECK(keep_idx.size(1) <= grad.size(1), "keep_idx must hold at most ", grad.size(1),
              " indices per row (the patch count), got ", keep_idx.size(1));
}

}  // namespace mmclip
