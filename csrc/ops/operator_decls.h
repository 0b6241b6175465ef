// Schemas and backend-independent argument checks of the mmclip operators.
//
// The library namespace `mmclip` is declared once (library.cpp); each operator file
// contributes its schema through define_<op>() and the metadata checks every backend
// runs before touching memory through check_<op>_inputs().
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

namespace mmclip {

void define_cross_modal_attention_score(torch::Library& m);
void define_attention_guided_mask(torch::Library& m);
void define_masked_gather_scatter(torch::Library& m);
void define_entity_span_mask(torch::Library& m);

// q[B,T,D], k[B,P,D], weight[B,T]; floating q/k of one dtype, weight floating.
void check_cross_modal_attention_score_inputs(const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& weight);
// weight[B,T] divided by its row maximum (in float64 for float64 weights, else float32),
// as contiguous float32; rows whose maximum is not > 0 are unchanged. What every
// backend's kernel sums, so that no sum of weights can overflow float32.
// Backend-independent (ATen ops on weight's device).
at::Tensor normalized_attention_weights(const at::Tensor& weight);

// scores[B,P] floating, noise[B,P] float32, 0 <= n_mask <= P, tau >= 0.
void check_attention_guided_mask_inputs(const at::Tensor& scores, const at::Tensor& noise,
                                        int64_t n_mask, double tau);

// x[B,P,D] floating, idx[B,K] int64.
void check_masked_gather_inputs(const at::Tensor& x, const at::Tensor& idx);
// grad[B,K,D] floating, idx[B,K] int64, num_patches >= 0.
void check_masked_gather_backward_inputs(const at::Tensor& grad, const at::Tensor& idx,
                                         int64_t num_patches);
// visible[B,K,D], keep_idx[B,K] int64, mask_token[D] (same dtype), K <= num_patches.
void check_masked_scatter_inputs(const at::Tensor& visible, const at::Tensor& keep_idx,
                                 const at::Tensor& mask_token, int64_t num_patches);
// grad[B,P,D] floating, keep_idx[B,K] int64 with K <= P.
void check_masked_scatter_backward_inputs(const at::Tensor& grad, const at::Tensor& keep_idx);

// See entity_span_mask.cpp for the full contract.
void check_entity_span_mask_inputs(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& special_tokens_mask,
                                   const at::Tensor& span_offsets, const at::Tensor& spans,
                                   const at::Tensor& span_noise, const at::Tensor& token_noise,
                                   const at::Tensor& action_noise, const at::Tensor& random_ids,
                                   double entity_prob, double target_ratio, double min_ratio,
                                   double max_ratio);

}  // namespace mmclip
