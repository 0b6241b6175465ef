// Schema and argument checks of mmclip::entity_span_mask.
//
// Per sample b: maskable = attention_mask & !special_tokens_mask, n = count;
//   n_max    = max(1, floor(max_ratio * n + 1e-9))
//   n_min    = min(max(1, ceil(min_ratio * n - 1e-9)), n_max)
//   n_target = clamp(round_half_even(target_ratio * n), n_min, n_max)     (0 when n == 0)
// 1. spans s in span_offsets[b]..span_offsets[b+1] (listed order) with span_noise[s] <
//    (float)entity_prob are masked whole (their maskable tokens) when the count stays <= n_max;
// 2. the unchosen maskable tokens with the smallest token_noise (ties: lower index) top the
//    count up to n_target;
// 3. a chosen token becomes mask_token_id if action_noise < 0.8f, random_ids if < 0.9f,
//    else stays; labels = input id at chosen tokens, -100 elsewhere.
// All noise is drawn by the caller, so the op is a pure function of its inputs.
#include "checks.h"
#include "operator_decls.h"

namespace mmclip {

void define_entity_span_mask(torch::Library& m) {
  m.def(
      "entity_span_mask(Tensor input_ids, Tensor attention_mask, Tensor special_tokens_mask, "
      "Tensor span_offsets, Tensor spans, Tensor span_noise, Tensor token_noise, "
      "Tensor action_noise, Tensor random_ids, float entity_prob, float target_ratio, "
      "float min_ratio, float max_ratio, int mask_token_id) -> (Tensor masked_ids, Tensor labels)");
}

void check_entity_span_mask_inputs(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& special_tokens_mask,
                                   const at::Tensor& span_offsets, const at::Tensor& spans,
                                   const at::Tensor& span_noise, const at::Tensor& token_noise,
                                   const at::Tensor& action_noise, const at::Tensor& random_ids,
                                   double entity_prob, double target_ratio, double min_ratio,
                                   double max_ratio) {
  check_rank(input_ids, "input_ids", 2);
  check_dtype(input_ids, "input_ids", at::kLong);
  const auto sizes = input_ids.sizes();
  struct Named {
    const at::Tensor* t;
    const char* name;
    at::ScalarType dtype;
  };
  const Named per_token[] = {{&attention_mask, "attention_mask", at::kBool},
                             {&special_tokens_mask, "special_tokens_mask", at::kBool},
                             {&token_noise, "token_noise", at::kFloat},
                             {&action_noise, "action_noise", at::kFloat},
                             {&random_ids, "random_ids", at::kLong}};
  for (const auto& n : per_token) {
    check_same_device(input_ids, "input_ids", *n.t, n.name);
    check_dtype(*n.t, n.name, n.dtype);
    TORCH_CHECK(n.t->sizes() == sizes, n.name, " must have the shape of input_ids (", sizes,
                "), got ", n.t->sizes());
  }
  check_rank(span_offsets, "span_offsets", 1);
  check_dtype(span_offsets, "span_offsets", at::kLong);
  check_same_device(input_ids, "input_ids", span_offsets, "span_offsets");
  check_size(span_offsets, "span_offsets", 0, input_ids.size(0) + 1, "batch size + 1");
  check_rank(spans, "spans", 2);
  check_dtype(spans, "spans", at::kLong);
  check_same_device(input_ids, "input_ids", spans, "spans");
  check_size(spans, "spans", 1, 2, "token start and end of each span");
  check_rank(span_noise, "span_noise", 1);
  check_dtype(span_noise, "span_noise", at::kFloat);
  check_same_device(input_ids, "input_ids", span_noise, "span_noise");
  check_size(span_noise, "span_noise", 0, spans.size(0), "one per span");
  check_ratio(entity_prob, "entity_prob");
  check_ratio(target_ratio, "target_ratio");
  check_ratio(min_ratio, "min_ratio");
  check_ratio(max_ratio, "max_ratio");
  TORCH_CHECK(min_ratio <= max_ratio, "min_ratio (", min_ratio, ") must not exceed max_ratio (",
              max_ratio, ")");
}

}  // namespace mmclip
