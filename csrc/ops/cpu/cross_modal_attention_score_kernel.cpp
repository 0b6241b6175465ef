// CPU kernel of mmclip::cross_modal_attention_score.
//
// One sample at a time per thread: the logits of the sample's weighted tokens form a
// [T', P] block (T' = tokens with weight > 0) that stays in cache; the [B, T, P]
// attention tensor is never built. The weights are checked (finite, >= 0) and divided by
// their row maximum first (normalized_attention_weights), so huge finite weights cannot
// overflow the float32 sums.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "../checks.h"
#include "../operator_decls.h"

namespace mmclip {
namespace {

at::Tensor cross_modal_attention_score_cpu(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& weight, double scale) {
  check_cross_modal_attention_score_inputs(q, k, weight);
  // The float32 products below must not be re-cast by an enclosing autocast region (the
  // worker threads of parallel_for inherit this guard with the caller's dispatch state).
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const int64_t batch = q.size(0), tokens = q.size(1), patches = k.size(1);
  auto out = at::empty({batch, patches}, q.options().dtype(at::kFloat));
  if (batch == 0 || patches == 0) return out;

  const auto q_c = q.contiguous();
  const auto k_c = k.contiguous();
  const auto w_raw = weight.to(at::kDouble).contiguous();  // exact for every float dtype
  const double* raw_ptr = w_raw.data_ptr<double>();
  for (int64_t i = 0; i < batch * tokens; ++i) {
    const double value = raw_ptr[i];
    TORCH_CHECK(std::isfinite(value) && value >= 0.0,
                "weight must be >= 0 and finite (0 ignores a token), found ", value, " at [",
                i / tokens, ", ", i % tokens, "]");
  }
  // Divided by the row maximum: the sums below add values in [0, 1] and cannot overflow.
  const auto w = normalized_attention_weights(weight);
  const float* w_ptr = w.data_ptr<float>();
  float* out_ptr = out.data_ptr<float>();

  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> valid;
    valid.reserve(tokens);
    for (int64_t b = begin; b < end; ++b) {
      const float* w_row = w_ptr + b * tokens;
      float* out_row = out_ptr + b * patches;
      valid.clear();
      double total = 0.0;
      for (int64_t t = 0; t < tokens; ++t) {
        if (w_row[t] > 0.0f) {
          valid.push_back(t);
          total += w_row[t];
        }
      }
      if (valid.empty()) {
        std::fill(out_row, out_row + patches, 1.0f / static_cast<float>(patches));
        continue;
      }
      const auto index = at::from_blob(valid.data(), {static_cast<int64_t>(valid.size())},
                                       at::TensorOptions().dtype(at::kLong));
      const auto q_rows = q_c[b].index_select(0, index).to(at::kFloat);   // [T', D]
      const auto k_rows = k_c[b].to(at::kFloat);                          // [P, D]
      const auto w_valid = w[b].index_select(0, index);                   // [T'], max 1
      const auto attention = at::mm(q_rows, k_rows.t()).mul_(scale).softmax(1);  // [T', P]
      const auto scores = at::mv(attention.t(), w_valid).div_(total);      // [P]
      std::copy_n(scores.data_ptr<float>(), patches, out_row);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CPU, m) {
  m.impl("cross_modal_attention_score", &cross_modal_attention_score_cpu);
}

}  // namespace mmclip
