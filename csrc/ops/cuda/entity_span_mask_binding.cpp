// CUDA binding of mmclip::entity_span_mask.
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

std::tuple<at::Tensor, at::Tensor> entity_span_mask_cuda(
    const at::Tensor& input_ids, const at::Tensor& attention_mask,
    const at::Tensor& special_tokens_mask, const at::Tensor& span_offsets, const at::Tensor& spans,
    const at::Tensor& span_noise, const at::Tensor& token_noise, const at::Tensor& action_noise,
    const at::Tensor& random_ids, double entity_prob, double target_ratio, double min_ratio,
    double max_ratio, int64_t mask_token_id) {
  check_entity_span_mask_inputs(input_ids, attention_mask, special_tokens_mask, span_offsets, spans,
                                span_noise, token_noise, action_noise, random_ids, entity_prob,
                                target_ratio, min_ratio, max_ratio);
  check_cuda(input_ids, "input_ids");
  const c10::cuda::CUDAGuard guard(input_ids.device());
  const int64_t batch = input_ids.size(0), length = input_ids.size(1);
  check_int32_size(batch, "input_ids.size(0) (batch)");
  check_int32_size(length, "input_ids.size(1) (length)");
  auto masked_ids = at::empty_like(input_ids, at::MemoryFormat::Contiguous);
  auto labels = at::empty_like(input_ids, at::MemoryFormat::Contiguous);
  if (batch == 0 || length == 0) return {masked_ids, labels};
  const auto ids = input_ids.contiguous();
  const auto attended = attention_mask.contiguous();
  const auto special = special_tokens_mask.contiguous();
  const auto offsets = span_offsets.contiguous();
  const auto spans_c = spans.contiguous();
  const auto u_span = span_noise.contiguous();
  const auto u_token = token_noise.contiguous();
  const auto u_action = action_noise.contiguous();
  const auto rand_ids = random_ids.contiguous();
  cuda::EntitySpanMaskArgs args{};
  args.input_ids = ids.data_ptr<int64_t>();
  args.attention_mask = attended.data_ptr<bool>();
  args.special_tokens_mask = special.data_ptr<bool>();
  args.span_offsets = offsets.data_ptr<int64_t>();
  args.spans = spans_c.data_ptr<int64_t>();
  args.span_noise = u_span.data_ptr<float>();
  args.token_noise = u_token.data_ptr<float>();
  args.action_noise = u_action.data_ptr<float>();
  args.random_ids = rand_ids.data_ptr<int64_t>();
  args.masked_ids = masked_ids.data_ptr<int64_t>();
  args.labels = labels.data_ptr<int64_t>();
  args.batch = batch;
  args.length = length;
  args.num_spans = spans.size(0);
  args.entity_prob = static_cast<float>(entity_prob);
  args.target_ratio = target_ratio;
  args.min_ratio = min_ratio;
  args.max_ratio = max_ratio;
  args.mask_token_id = mask_token_id;
  auto ws = workspace(cuda::entity_span_mask_workspace_bytes(batch, length), input_ids);
  C10_CUDA_CHECK(cuda::launch_entity_span_mask(args, ws.data_ptr(), current_stream()));
  return {masked_ids, labels};
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CUDA, m) {
  m.impl("entity_span_mask", &entity_span_mask_cuda);
}

}  // namespace mmclip
