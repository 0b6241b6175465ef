// Host launchers of the mmclip CUDA kernels: torch-free declarations (raw pointers,
// sizes, a dtype tag and the stream), so that the kernels compile with plain nvcc and
// the ATen side (<op>_binding.cpp) stays a thin layer.
//
// Conventions shared by every launcher:
// * All tensors are contiguous, row-major, on the current device; `stream` is the
//   caller's current stream. Nothing synchronises the host.
// * Sizes may be 0: a launcher then launches nothing (or only what writes the defined
//   part of the outputs) and returns cudaSuccess.
// * The return value is cudaGetLastError() after the launches (or the first failing
//   runtime call); the binding turns it into an exception.
// * Workspaces are device buffers allocated by the caller with the size that the
//   matching *_workspace_bytes() function returns (no alignment beyond 256 bytes is
//   required; the caching allocator gives 512).
// * Index values are never trusted: an index outside its range is skipped (never read
//   or written through), as documented per launcher. The CPU kernels reject such
//   inputs with an error instead; the Python wrappers reject them on every device
//   before dispatch, so only direct calls of torch.ops.mmclip.* reach these guards.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mmclip {
namespace cuda {

// Element type of the floating tensors.
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2, F64 = 3 };

// ---------------------------------------------------------------------------------
// cross_modal_attention_score
// q[B,T,D], k[B,P,D] (dtype), weight[B,T] float32 divided by its row maximum (the
// binding's normalized_attention_weights: values in [0, 1], so no float32 sum can
// overflow), out[B,P] float32.
// out[b,p] = sum_t w[b,t] softmax_p(scale * q[b,t].k[b,p]) / sum_t w[b,t]; rows whose
// weight sum is not > 0 get 1/P. Tokens with w == 0 are skipped (their logits are
// never used, so inf / NaN there does not leak). Negative or NaN weights are not
// rejected here (no host synchronisation): the Python wrapper rejects them on every
// device; a direct call gets them in the sums like the reference formula.
size_t cross_modal_attention_score_workspace_bytes(int64_t B, int64_t T, int64_t P);
cudaError_t launch_cross_modal_attention_score(const void* q, const void* k, const float* weight,
                                               float* out, void* workspace, int64_t B, int64_t T,
                                               int64_t P, int64_t D, float scale, DType dtype,
                                               cudaStream_t stream);

// ---------------------------------------------------------------------------------
// attention_guided_mask
// scores[B,P] (dtype), noise[B,P] float32 -> keep_idx[B,P-n], mask_idx[B,n] int64
// ascending, mask[B,P] bool (stored as one byte per element, 1 = masked).
cudaError_t launch_attention_guided_mask(const void* scores, const float* noise,
                                         int64_t* keep_idx, int64_t* mask_idx, bool* mask,
                                         int64_t B, int64_t P, int64_t n_mask, double tau,
                                         DType dtype, cudaStream_t stream);

// ---------------------------------------------------------------------------------
// masked_gather: out[b,j,:] = x[b, idx[b,j], :]; x[B,P,D], idx[B,K], out[B,K,D].
// An index outside [0, P) gives a row of zeros.
cudaError_t launch_masked_gather(const void* x, const int64_t* idx, void* out, int64_t B,
                                 int64_t P, int64_t K, int64_t D, DType dtype,
                                 cudaStream_t stream);

// masked_gather_backward: out[b,p,:] = sum over j with idx[b,j] == p of grad[b,j,:]
// (zero where p is not indexed); grad[B,K,D], idx[B,K], out[B,P,D]. Rows hit once are
// copied exactly; rows hit several times are summed in float32 (float64 for double)
// in increasing j, like the CPU kernel. Indices outside [0, P) are ignored.
size_t masked_gather_backward_workspace_bytes(int64_t B, int64_t P);
cudaError_t launch_masked_gather_backward(const void* grad, const int64_t* idx, void* out,
                                          void* workspace, int64_t B, int64_t K, int64_t P,
                                          int64_t D, DType dtype, cudaStream_t stream);

// masked_scatter: out[b,p,:] = visible[b,j,:] where keep_idx[b,j] == p, mask_token
// elsewhere; visible[B,K,D], keep_idx[B,K], mask_token[D], out[B,P,D]. keep_idx rows
// must be distinct (the CPU kernel checks; here a repeated position takes the row of
// its largest j, deterministically). Indices outside [0, P) are ignored.
size_t masked_scatter_workspace_bytes(int64_t B, int64_t P);
cudaError_t launch_masked_scatter(const void* visible, const int64_t* keep_idx,
                                  const void* mask_token, void* out, void* workspace, int64_t B,
                                  int64_t K, int64_t P, int64_t D, DType dtype,
                                  cudaStream_t stream);

// masked_scatter_backward: grad_visible[b,j,:] = grad[b, keep_idx[b,j], :] (zeros for
// an index outside [0, P)), grad_token[d] = sum of grad[b,p,d] over the positions p not
// in keep_idx[b] (float32 accumulation, float64 for double; a fixed reduction tree, so
// the result is bitwise reproducible for given shapes).
size_t masked_scatter_backward_workspace_bytes(int64_t B, int64_t P, int64_t D, DType dtype);
cudaError_t launch_masked_scatter_backward(const void* grad, const int64_t* keep_idx,
                                           void* grad_visible, void* grad_token, void* workspace,
                                           int64_t B, int64_t P, int64_t K, int64_t D,
                                           DType dtype, cudaStream_t stream);

// ---------------------------------------------------------------------------------
// entity_span_mask (see csrc/ops/entity_span_mask.cpp for the contract). Spans outside
// [0, L) or ending before they start, and span_offsets outside [0, S] or decreasing,
// are skipped (the CPU kernel rejects them with an error).
struct EntitySpanMaskArgs {
  const int64_t* input_ids;           // [B, L]
  const bool* attention_mask;         // [B, L]
  const bool* special_tokens_mask;    // [B, L]
  const int64_t* span_offsets;        // [B + 1]
  const int64_t* spans;               // [S, 2]
  const float* span_noise;            // [S]
  const float* token_noise;           // [B, L]
  const float* action_noise;          // [B, L]
  const int64_t* random_ids;          // [B, L]
  int64_t* masked_ids;                // [B, L] out
  int64_t* labels;                    // [B, L] out
  int64_t batch;                      // B
  int64_t length;                     // L
  int64_t num_spans;                  // S
  float entity_prob;                  // (float)entity_prob, as the CPU compares
  double target_ratio, min_ratio, max_ratio;
  int64_t mask_token_id;
};
size_t entity_span_mask_workspace_bytes(int64_t B, int64_t L);
cudaError_t launch_entity_span_mask(const EntitySpanMaskArgs& args, void* workspace,
                                    cudaStream_t stream);

}  // namespace cuda
}  // namespace mmclip
