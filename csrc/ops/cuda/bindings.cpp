// ATen side of the mmclip CUDA operators: argument checks (the backend-independent
// check_<op>_inputs), device guard, current stream, output / workspace allocation,
// contiguity and dtype dispatch, then the torch-free launchers of kernels.h.
//
// Nothing here synchronises with the device: value checks that the CPU kernels make
// (index ranges, distinct keep_idx, well-formed spans, finite non-negative weights) are
// not repeated; the Python wrappers make them on every device before dispatch, and for
// direct calls of torch.ops.mmclip.* the kernels never access memory out of bounds for
// such values (see kernels.h for what each one does with them).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../checks.h"
#include "../operator_decls.h"
#include "kernels.h"

namespace mmclip {
namespace {

cuda::DType kernel_dtype(const at::Tensor& t, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return cuda::DType::F32;
    case at::kHalf:
      return cuda::DType::F16;
    case at::kBFloat16:
      return cuda::DType::BF16;
    case at::kDouble:
      return cuda::DType::F64;
    default:
      TORCH_CHECK(false, name, " must have dtype float32, float64, float16 or bfloat16, got ",
                  t.scalar_type());
  }
}

cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// A device byte buffer of at least `bytes` (never empty, so its pointer is valid).
at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))},
                   like.options().dtype(at::kByte));
}

void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor, got device ", t.device());
}

at::Tensor cross_modal_attention_score_cuda(const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& weight, double scale) {
  check_cross_modal_attention_score_inputs(q, k, weight);
  check_cuda(q, "q");
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t batch = q.size(0), tokens = q.size(1), patches = k.size(1), dim = q.size(2);
  auto out = at::empty({batch, patches}, q.options().dtype(at::kFloat));
  if (batch == 0 || patches == 0) return out;
  const auto q_c = q.contiguous();
  const auto k_c = k.contiguous();
  // Row maxima of 1 (divided on the device): the kernels' float32 sums of
  // weights and weighted probabilities stay <= T and cannot overflow.
  const auto w = normalized_attention_weights(weight);
  auto ws = workspace(cuda::cross_modal_attention_score_workspace_bytes(batch, tokens, patches), q);
  C10_CUDA_CHECK(cuda::launch_cross_modal_attention_score(
      q_c.data_ptr(), k_c.data_ptr(), w.data_ptr<float>(), out.data_ptr<float>(), ws.data_ptr(),
      batch, tokens, patches, dim, static_cast<float>(scale), kernel_dtype(q, "q"),
      current_stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_guided_mask_cuda(const at::Tensor& scores,
                                                                          const at::Tensor& noise,
                                                                          int64_t n_mask,
                                                                          double tau) {
  check_attention_guided_mask_inputs(scores, noise, n_mask, tau);
  check_cuda(scores, "scores");
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t batch = scores.size(0), patches = scores.size(1);
  const auto long_opts = scores.options().dtype(at::kLong);
  auto keep_idx = at::empty({batch, patches - n_mask}, long_opts);
  auto mask_idx = at::empty({batch, n_mask}, long_opts);
  auto mask = at::empty({batch, patches}, scores.options().dtype(at::kBool));
  if (batch == 0 || patches == 0) return {keep_idx, mask_idx, mask};
  const auto s = scores.contiguous();
  const auto u = noise.contiguous();
  C10_CUDA_CHECK(cuda::launch_attention_guided_mask(
      s.data_ptr(), u.data_ptr<float>(), keep_idx.data_ptr<int64_t>(), mask_idx.data_ptr<int64_t>(),
      mask.data_ptr<bool>(), batch, patches, n_mask, tau, kernel_dtype(scores, "scores"),
      current_stream()));
  return {keep_idx, mask_idx, mask};
}

at::Tensor masked_gather_cuda(const at::Tensor& x, const at::Tensor& idx) {
  check_masked_gather_inputs(x, idx);
  check_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t batch = x.size(0), patches = x.size(1), dim = x.size(2), count = idx.size(1);
  auto out = at::empty({batch, count, dim}, x.options());
  if (out.numel() == 0) return out;
  const auto x_c = x.contiguous();
  const auto idx_c = idx.contiguous();
  C10_CUDA_CHECK(cuda::launch_masked_gather(x_c.data_ptr(), idx_c.data_ptr<int64_t>(),
                                            out.data_ptr(), batch, patches, count, dim,
                                            kernel_dtype(x, "x"), current_stream()));
  return out;
}

at::Tensor masked_gather_backward_cuda(const at::Tensor& grad, const at::Tensor& idx,
                                       int64_t num_patches) {
  check_masked_gather_backward_inputs(grad, idx, num_patches);
  check_cuda(grad, "grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t batch = grad.size(0), count = grad.size(1), dim = grad.size(2);
  auto out = at::empty({batch, num_patches, dim}, grad.options());  // every row is written
  if (out.numel() == 0) return out;
  const auto g_c = grad.contiguous();
  const auto idx_c = idx.contiguous();
  auto ws = workspace(cuda::masked_gather_backward_workspace_bytes(batch, num_patches), grad);
  C10_CUDA_CHECK(cuda::launch_masked_gather_backward(
      g_c.data_ptr(), idx_c.data_ptr<int64_t>(), out.data_ptr(), ws.data_ptr(), batch, count,
      num_patches, dim, kernel_dtype(grad, "grad"), current_stream()));
  return out;
}

at::Tensor masked_scatter_cuda(const at::Tensor& visible, const at::Tensor& keep_idx,
                               const at::Tensor& mask_token, int64_t num_patches) {
  check_masked_scatter_inputs(visible, keep_idx, mask_token, num_patches);
  check_cuda(visible, "visible");
  const c10::cuda::CUDAGuard guard(visible.device());
  const int64_t batch = visible.size(0), count = visible.size(1), dim = visible.size(2);
  auto out = at::empty({batch, num_patches, dim}, visible.options());  // every row is written
  if (out.numel() == 0) return out;
  const auto v_c = visible.contiguous();
  const auto idx_c = keep_idx.contiguous();
  const auto t_c = mask_token.contiguous();
  auto ws = workspace(cuda::masked_scatter_workspace_bytes(batch, num_patches), visible);
  C10_CUDA_CHECK(cuda::launch_masked_scatter(
      v_c.data_ptr(), idx_c.data_ptr<int64_t>(), t_c.data_ptr(), out.data_ptr(), ws.data_ptr(),
      batch, count, num_patches, dim, kernel_dtype(visible, "visible"), current_stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> masked_scatter_backward_cuda(const at::Tensor& grad,
                                                                const at::Tensor& keep_idx) {
  check_masked_scatter_backward_inputs(grad, keep_idx);
  check_cuda(grad, "grad");
  const c10::cuda::CUDAGuard guard(grad.device());
  const int64_t batch = grad.size(0), patches = grad.size(1), dim = grad.size(2);
  const int64_t count = keep_idx.size(1);
  auto grad_visible = at::empty({batch, count, dim}, grad.options());
  if (dim == 0) return {grad_visible, at::zeros({dim}, grad.options())};
  auto grad_token = at::empty({dim}, grad.options());  // written even when batch == 0
  const auto g_c = grad.contiguous();
  const auto idx_c = keep_idx.contiguous();
  const auto dtype = kernel_dtype(grad, "grad");
  auto ws = workspace(cuda::masked_scatter_backward_workspace_bytes(batch, patches, dim, dtype),
                      grad);
  C10_CUDA_CHECK(cuda::launch_masked_scatter_backward(
      g_c.data_ptr(), idx_c.data_ptr<int64_t>(), grad_visible.data_ptr(), grad_token.data_ptr(),
      ws.data_ptr(), batch, patches, count, dim, dtype, current_stream()));
  return {grad_visible, grad_token};
}

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
  m.impl("cross_modal_attention_score", &cross_modal_attention_score_cuda);
  m.impl("attention_guided_mask", &attention_guided_mask_cuda);
  m.impl("masked_gather", &masked_gather_cuda);
  m.impl("masked_gather_backward", &masked_gather_backward_cuda);
  m.impl("masked_scatter", &masked_scatter_cuda);
  m.impl("masked_scatter_backward", &masked_scatter_backward_cuda);
  m.impl("entity_span_mask", &entity_span_mask_cuda);
}

}  // namespace mmclip
