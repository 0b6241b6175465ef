// CUDA kernel of mmclip::attention_guided_mask.
//
// Mapping: one block of 256 threads per row b; patch p is handled by thread p % 256.
// 1. keys: u[p] = ordered_bits(gumbel_key(scores[b,p], noise[b,p], tau)) (float64 key
//    from kernel_math.h, mapped to uint64 preserving order; selection.h), cached in
//    shared memory when P * 8 bytes fit beside the static scratch in the default
//    48 KiB (P <= ~5,900), recomputed from global memory otherwise;
// 2. block radix select (block_select.cuh, 8 passes of 8 bits) of the n_mask-th key
//    under (u descending, p ascending), the order of kernel_math.h's key_before();
// 3. one ordered sweep over p in chunks of 256: a block scan ranks the keys equal to
//    the threshold (lowest indices taken first) and a second one ranks the masked
//    patches, giving the ascending mask_idx / keep_idx positions and mask[b,p].
// The selection is exact for any P. It equals the CPU's whenever the device computes
// the same float64 keys: always for tau == 0 (key = score) and otherwise up to the
// last bit of CUDA's log() against the host's (<= 1 ulp; a different selection would
// need two keys of one row within that ulp).
#include <cuda_runtime.h>

#include <cstdint>

#include "block_select.cuh"
#include "common.cuh"
#include "kernels.h"
#include "selection.h"

namespace mmclip {
namespace cuda {
namespace {

// Dynamic shared memory for the key cache: what is left of the default 48 KiB once the
// kernel's static scratch is in, so that no launch needs the opt-in attribute.
constexpr int64_t kKeyCacheBytes = kDefaultSmemBytes -
                                   static_cast<int64_t>(sizeof(BlockScratch) + sizeof(SelectScratch)) -
                                   kStaticSmemSlack;

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    attention_guided_mask_kernel(const T* __restrict__ scores, const float* __restrict__ noise,
                                 int64_t* __restrict__ keep_idx, int64_t* __restrict__ mask_idx,
                                 bool* __restrict__ mask, int P, int n_mask, double tau,
                                 bool cache_keys) {
  extern __shared__ uint64_t key_cache[];  // P entries when cache_keys
  __shared__ BlockScratch scratch;
  __shared__ SelectScratch sel;
  const int64_t b = blockIdx.x;
  const int tid = threadIdx.x;
  const T* s_row = scores + b * P;
  const float* u_row = noise + b * P;
  const int n_keep = P - n_mask;
  int64_t* keep_row = keep_idx + b * n_keep;
  int64_t* mask_row = mask_idx + b * n_mask;
  bool* m_row = mask + b * P;

  auto compute_key = [&](int p) {
    return guided_mask_select_key(Convert<T>::to_double(s_row[p]), u_row[p], tau);
  };
  if (cache_keys) {
    for (int p = tid; p < P; p += kBlockThreads) key_cache[p] = compute_key(p);
    __syncthreads();
  }
  auto key_of = [&](int p) { return cache_keys ? key_cache[p] : compute_key(p); };

  const SelectThreshold th = block_radix_select(key_of, P, n_mask, scratch, sel);

  int equal_before = 0, masked_before = 0;
  for (int base = 0; base < P; base += kBlockThreads) {
    const int p = base + tid;
    const bool in_row = p < P;
    const uint64_t u = in_row ? key_of(p) : 0;
    const bool equal = in_row && !th.none && u == th.threshold;
    int equal_total = 0;
    const int equal_rank = equal_before + block_exclusive_count(equal, equal_total, scratch);
    const bool masked = in_row && select_taken(th, u, equal_rank);
    int masked_total = 0;
    const int masked_rank = masked_before + block_exclusive_count(masked, masked_total, scratch);
    if (in_row) {
      m_row[p] = masked;
      if (masked) {
        if (masked_rank < n_mask) mask_row[masked_rank] = p;
      } else {
        const int keep_rank = p - masked_rank;
        if (keep_rank < n_keep) keep_row[keep_rank] = p;
      }
    }
    equal_before += equal_total;
    masked_before += masked_total;
  }
}

template <typename T>
cudaError_t launch_typed(const void* scores, const float* noise, int64_t* keep_idx,
                         int64_t* mask_idx, bool* mask, int64_t B, int64_t P, int64_t n_mask,
                         double tau, cudaStream_t stream) {
  const bool cache = P * static_cast<int64_t>(sizeof(uint64_t)) <= kKeyCacheBytes;
  const size_t smem = cache ? static_cast<size_t>(P) * sizeof(uint64_t) : 0;
  attention_guided_mask_kernel<T><<<static_cast<unsigned>(B), kBlockThreads, smem, stream>>>(
      static_cast<const T*>(scores), noise, keep_idx, mask_idx, mask, static_cast<int>(P),
      static_cast<int>(n_mask), tau, cache);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_attention_guided_mask(const void* scores, const float* noise,
                                         int64_t* keep_idx, int64_t* mask_idx, bool* mask,
                                         int64_t B, int64_t P, int64_t n_mask, double tau,
                                         DType dtype, cudaStream_t stream) {
  if (B == 0 || P == 0) return cudaSuccess;
  if (P > 0x7fffffffLL || B > 0x7fffffffLL || n_mask < 0 || n_mask > P) {
    return cudaErrorInvalidValue;
  }
  switch (dtype) {
    case DType::F32:
      return launch_typed<float>(scores, noise, keep_idx, mask_idx, mask, B, P, n_mask, tau, stream);
    case DType::F64:
      return launch_typed<double>(scores, noise, keep_idx, mask_idx, mask, B, P, n_mask, tau, stream);
    case DType::F16:
      return launch_typed<__half>(scores, noise, keep_idx, mask_idx, mask, B, P, n_mask, tau, stream);
    case DType::BF16:
      return launch_typed<__nv_bfloat16>(scores, noise, keep_idx, mask_idx, mask, B, P, n_mask, tau,
                                         stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace cuda
}  // namespace mmclip
