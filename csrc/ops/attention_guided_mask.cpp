// Schema and argument checks of mmclip::attention_guided_mask.
//
// key[b,p] = log(scores[b,p]) / tau - log(-log(noise[b,p]))    (computed in float64)
//   tau == 0   : key = scores (no noise: exactly the top scores)
//   tau == inf : key = Gumbel noise alone (uniform random masking)
// The n_mask largest keys of each row are masked, equal keys in index order; NaN keys
// count as -inf. Outputs: keep_idx[B,P-n] and mask_idx[B,n] int64 ascending, mask[B,P]
// bool (true = masked). The noise is drawn by the caller, so the op is a pure function.
#include "checks.h"
#include "operator_decls.h"

namespace mmclip {

void define_attention_guided_mask(torch::Library& m) {
  m.def(
      "attention_guided_mask(Tensor scores, Tensor noise, int n_mask, float tau) -> "
      "(Tensor keep_idx, Tensor mask_idx, Tensor mask)");
}

void check_attention_guided_mask_inputs(const at::Tensor& scores, const at::Tensor& noise,
                                        int64_t n_mask, double tau) {
  check_rank(scores, "scores", 2);
  check_rank(noise, "noise", 2);
  check_floating(scores, "scores");
  check_dtype(noise, "noise", at::kFloat);
  check_same_device(scores, "scores", noise, "noise");
  TORCH_CHECK(noise.sizes() == scores.sizes(), "noise must have the shape of scores (",
              scores.sizes(), "), got ", noise.sizes());
  TORCH_CHECK(n_mask >= 0 && n_mask <= scores.size(1), "n_mask must lie in [0, ", scores.size(1),
              "] (the patch count), got ", n_mask);
  TORCH_CHECK(tau >= 0.0, "tau must be >= 0 (inf for uniform masking), got ", tau);
}

}  // namespace mmclip
