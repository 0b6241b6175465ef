// Schema and argument checks of mmclip::cross_modal_attention_score.
//
// s[b, p] = sum_t w[b,t] softmax_p(scale * q[b,t] . k[b,p]) / sum_t w[b,t]   (float32)
// Rows whose weights are all zero give 1/P. Not differentiable. Kernels must not
// materialise the [B, T, P] attention tensor.
//
// The weights enter the kernels divided by their row maximum (normalized_attention_weights;
// float64 weights divide in float64, the others in float32), so every kernel sums values
// in [0, 1]: a row of very large finite weights (up to the maximum of their dtype) cannot
// overflow the float32 sums and still sums to 1.
#include <ATen/ATen.h>

#include "checks.h"
#include "operator_decls.h"

namespace mmclip {

void define_cross_modal_attention_score(torch::Library& m) {
  m.def("cross_modal_attention_score(Tensor q, Tensor k, Tensor weight, float scale) -> Tensor");
}

void check_cross_modal_attention_score_inputs(const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& weight) {
  check_rank(q, "q", 3);
  check_rank(k, "k", 3);
  check_rank(weight, "weight", 2);
  check_same_device(q, "q", k, "k");
  check_same_device(q, "q", weight, "weight");
  check_floating(q, "q");
  check_floating(weight, "weight");
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), "k must have the dtype of q (", q.scalar_type(),
              "), got ", k.scalar_type());
  check_size(k, "k", 0, q.size(0), "batch size of q");
  check_size(k, "k", 2, q.size(2), "feature size of q");
  check_size(weight, "weight", 0, q.size(0), "batch size of q");
  check_size(weight, "weight", 1, q.size(1), "token count of q");
}

at::Tensor normalized_attention_weights(const at::Tensor& weight) {
  // float64 weights (beyond the float32 range) divide in float64, the others in float32.
  const auto w = weight.scalar_type() == at::kDouble ? weight : weight.to(at::kFloat);
  if (w.size(0) == 0 || w.size(1) == 0) return w.to(at::kFloat).contiguous();
  const auto row_max = std::get<0>(w.max(1, /*keepdim=*/true));  // [B, 1]
  const auto positive = row_max > 0;
  // Rows without a positive weight stay all zero (1/P); others get a maximum of exactly 1.
  const auto divisor = at::where(positive, row_max, at::ones_like(row_max));
  return w.div(divisor).to(at::kFloat).contiguous();
}

}  // namespace mmclip
