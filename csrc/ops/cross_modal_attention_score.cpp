// Schema and argument checks of mmclip::cross_modal_attention_score.
//
// s[b, p] = sum_t w[b,t] softmax_p(scale * q[b,t] . k[b,p]) / sum_t w[b,t]   (float32)
// Rows whose weights are all zero give 1/P. Not differentiable. Kernels must not
// materialise the [B, T, P] attention tensor.
#include "checks.h"
#include "ops.h"

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

}  // namespace mmclip
