// C++ entry points of the mmclip operators, called through the PyTorch dispatcher
// (so the CPU or CUDA kernel is chosen by the inputs' device).
//
// Random operators take their noise as tensors: draw it with at::rand / at::randint
// and your generator, as the Python wrappers in mmclip.ops do. Semantics: docs/operators.md.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/Tensor.h>

#include <tuple>

namespace mmclip {
namespace detail {
template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}
}  // namespace detail

// s[B,P] float32: attention each patch receives from the weighted text tokens.
inline at::Tensor cross_modal_attention_score(const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& weight, double scale) {
  static auto handle = detail::op<at::Tensor(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, double)>(
      "mmclip::cross_modal_attention_score");
  return handle.call(q, k, weight, scale);
}

// (keep_idx[B,P-n], mask_idx[B,n], mask[B,P]) from scores[B,P] and uniform noise[B,P].
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_guided_mask(
    const at::Tensor& scores, const at::Tensor& noise, int64_t n_mask, double tau) {
  static auto handle = detail::op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, int64_t, double)>("mmclip::attention_guided_mask");
  return handle.call(scores, noise, n_mask, tau);
}

// out[b,j] = x[b, idx[b,j]].
inline at::Tensor masked_gather(const at::Tensor& x, const at::Tensor& idx) {
  static auto handle =
      detail::op<at::Tensor(const at::Tensor&, const at::Tensor&)>("mmclip::masked_gather");
  return handle.call(x, idx);
}

// visible tokens back at keep_idx, mask_token elsewhere: [B, num_patches, D].
inline at::Tensor masked_scatter(const at::Tensor& visible, const at::Tensor& keep_idx,
                                 const at::Tensor& mask_token, int64_t num_patches) {
  static auto handle = detail::op<at::Tensor(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, int64_t)>("mmclip::masked_scatter");
  return handle.call(visible, keep_idx, mask_token, num_patches);
}

// (masked_ids, labels) of whole-entity masking; see docs/operators.md for the noise inputs.
inline std::tuple<at::Tensor, at::Tensor> entity_span_mask(
    const at::Tensor& input_ids, const at::Tensor& attention_mask,
    const at::Tensor& special_tokens_mask, const at::Tensor& span_offsets, const at::Tensor& spans,
    const at::Tensor& span_noise, const at::Tensor& token_noise, const at::Tensor& action_noise,
    const at::Tensor& random_ids, double entity_prob, double target_ratio, double min_ratio,
    double max_ratio, int64_t mask_token_id) {
  using Sig = std::tuple<at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
      const at::Tensor&, double, double, double, double, int64_t);
  static auto handle = detail::op<Sig>("mmclip::entity_span_mask");
  return handle.call(input_ids, attention_mask, special_tokens_mask, span_offsets, spans,
                     span_noise, token_noise, action_noise, random_ids, entity_prob, target_ratio,
                     min_ratio, max_ratio, mask_token_id);
}

}  // namespace mmclip
