// The backend-independent front of the operators whose backends differ only in their kernel.
//
// The op's C++ signature, the shared checks (check_<op>_inputs), the contiguous inputs and
// the allocated outputs are written once here; each backend registers the front with its
// kernel, e.g. m.impl("entity_span_mask", &entity_span_mask_op<entity_span_mask_cpu>).
// A kernel gets the checked tensors, makes its own device and value checks, and fills the
// outputs (it returns at once when they are empty).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "operator_decls.h"

namespace mmclip {

// attention_guided_mask: contiguous scores [B,P] and noise [B,P]; outputs keep_idx [B,P-n]
// and mask_idx [B,n] (int64), mask [B,P] (bool).
struct GuidedMaskTensors {
  at::Tensor scores, noise, keep_idx, mask_idx, mask;
  int64_t n_mask;
  double tau;
};

template <void (*Kernel)(const GuidedMaskTensors&)>
std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_guided_mask_op(const at::Tensor& scores,
                                                                        const at::Tensor& noise,
                                                                        int64_t n_mask,
                                                                        double tau) {
  check_attention_guided_mask_inputs(scores, noise, n_mask, tau);
  const int64_t batch = scores.size(0), patches = scores.size(1);
  const auto long_opts = scores.options().dtype(at::kLong);
  const GuidedMaskTensors t{scores.contiguous(),
                            noise.contiguous(),
                            at::empty({batch, patches - n_mask}, long_opts),
                            at::empty({batch, n_mask}, long_opts),
                            at::empty({batch, patches}, scores.options().dtype(at::kBool)),
                            n_mask,
                            tau};
  Kernel(t);
  return {t.keep_idx, t.mask_idx, t.mask};
}

// entity_span_mask: the contiguous inputs, outputs masked_ids and labels ([B,L] int64) and
// the scalar arguments.
struct SpanMaskTensors {
  at::Tensor input_ids, attention_mask, special_tokens_mask, span_offsets, spans, span_noise,
      token_noise, action_noise, random_ids, masked_ids, labels;
  double entity_prob, target_ratio, min_ratio, max_ratio;
  int64_t mask_token_id;
};

template <void (*Kernel)(const SpanMaskTensors&)>
std::tuple<at::Tensor, at::Tensor> entity_span_mask_op(
    const at::Tensor& input_ids, const at::Tensor& attention_mask,
    const at::Tensor& special_tokens_mask, const at::Tensor& span_offsets, const at::Tensor& spans,
    const at::Tensor& span_noise, const at::Tensor& token_noise, const at::Tensor& action_noise,
    const at::Tensor& random_ids, double entity_prob, double target_ratio, double min_ratio,
    double max_ratio, int64_t mask_token_id) {
  check_entity_span_mask_inputs(input_ids, attention_mask, special_tokens_mask, span_offsets, spans,
                                span_noise, token_noise, action_noise, random_ids, entity_prob,
                                target_ratio, min_ratio, max_ratio);
  const SpanMaskTensors t{input_ids.contiguous(),
                          attention_mask.contiguous(),
                          special_tokens_mask.contiguous(),
                          span_offsets.contiguous(),
                          spans.contiguous(),
                          span_noise.contiguous(),
                          token_noise.contiguous(),
                          action_noise.contiguous(),
                          random_ids.contiguous(),
                          at::empty_like(input_ids, at::MemoryFormat::Contiguous),
                          at::empty_like(input_ids, at::MemoryFormat::Contiguous),
                          entity_prob,
                          target_ratio,
                          min_ratio,
                          max_ratio,
                          mask_token_id};
  Kernel(t);
  return {t.masked_ids, t.labels};
}

}  // namespace mmclip
