// CUDA binding of mmclip::entity_span_mask.
//
// ATen side of the CUDA kernel, behind the backend-independent front of backend_entry.h
// (check_<op>_inputs, contiguous inputs, outputs): the kernels' size limits (naming the
// argument), device guard, current stream, workspace allocation and dtype dispatch, then
// the torch-free launcher of kernels.h. Nothing here synchronises with the device: the
// value checks the CPU kernels make are made by the Python wrappers on every device
// (docs/cuda.md).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../backend_entry.h"
#include "binding_utils.h"
#include "kernels.h"

namespace mmclip {
namespace {

using namespace binding;  // check_cuda, current_stream, kernel_dtype, workspace, ...

void entity_span_mask_cuda(const SpanMaskTensors& t) {
  check_cuda(t.input_ids, "input_ids");
  const c10::cuda::CUDAGuard guard(t.input_ids.device());
  const int64_t batch = t.input_ids.size(0), length = t.input_ids.size(1);
  check_int32_size(batch, "input_ids.size(0) (batch)");
  check_int32_size(length, "input_ids.size(1) (length)");
  if (batch == 0 || length == 0) return;
  cuda::EntitySpanMaskArgs args{};
  args.input_ids = t.input_ids.data_ptr<int64_t>();
  args.attention_mask = t.attention_mask.data_ptr<bool>();
  args.special_tokens_mask = t.special_tokens_mask.data_ptr<bool>();
  args.span_offsets = t.span_offsets.data_ptr<int64_t>();
  args.spans = t.spans.data_ptr<int64_t>();
  args.span_noise = t.span_noise.data_ptr<float>();
  args.token_noise = t.token_noise.data_ptr<float>();
  args.action_noise = t.action_noise.data_ptr<float>();
  args.random_ids = t.random_ids.data_ptr<int64_t>();
  args.masked_ids = t.masked_ids.data_ptr<int64_t>();
  args.labels = t.labels.data_ptr<int64_t>();
  args.batch = batch;
  args.length = length;
  args.num_spans = t.spans.size(0);
  args.entity_prob = static_cast<float>(t.entity_prob);
  args.target_ratio = t.target_ratio;
  args.min_ratio = t.min_ratio;
  args.max_ratio = t.max_ratio;
  args.mask_token_id = t.mask_token_id;
  auto ws = workspace(cuda::entity_span_mask_workspace_bytes(batch, length), t.input_ids);
  C10_CUDA_CHECK(cuda::launch_entity_span_mask(args, ws.data_ptr(), current_stream()));
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CUDA, m) {
  m.impl("entity_span_mask", &entity_span_mask_op<entity_span_mask_cuda>);
}

}  // namespace mmclip
