// CUDA kernel of mmclip::entity_span_mask: the CPU kernel's decisions, one block per
// sample.
//
// Mapping: one block of 256 threads per sample b; token l is handled by thread l % 256.
// Per-token state is one byte (bit 0 = maskable, bit 1 = chosen) in shared memory
// (L up to ~47K, what fits beside the static scratch in the default 48 KiB) or in a
// global workspace row (longer sequences).
// 1. maskable = attended & !special; n = block count; budget = entity_mask_budget(n)
//    (kernel_math.h, the CPU's function);
// 2. warp 0 walks the sample's spans in listed order, as the CPU: a span whose noise
//    is below (float)entity_prob adds its unchosen maskable tokens (a warp reduction)
//    when the count stays <= n_max. Spans outside [0, L) or ending before they start
//    are skipped, and span_offsets are clamped to [0, S] (the CPU rejects both);
// 3. need = n_target - count tokens are topped up: the unchosen maskable tokens with
//    the smallest (token_noise, index), found by the block radix select on
//    entity_topup_select_key() (selection.h);
// 4. the same ordered sweep writes masked_ids (replacement_id(), kernel_math.h) and
//    labels.
#include <cuda_runtime.h>

#include <cstdint>

#include "../kernel_math.h"
#include "block_select.cuh"
#include "common.cuh"
#include "kernels.h"
#include "selection.h"

namespace mmclip {
namespace cuda {
namespace {

// Dynamic shared memory for the token flags: what is left of the default 48 KiB once the
// kernel's static scratch is in (no launch needs the opt-in attribute).
constexpr int64_t kFlagsSmemBytes =
    kDefaultSmemBytes -
    static_cast<int64_t>(sizeof(BlockScratch) + sizeof(SelectScratch) + sizeof(long long)) -
    kStaticSmemSlack;
constexpr uint8_t kMaskable = 1;
constexpr uint8_t kChosen = 2;

__global__ void __launch_bounds__(kBlockThreads)
    entity_span_mask_kernel(EntitySpanMaskArgs a, uint8_t* __restrict__ flags_workspace,
                            bool flags_in_smem) {
  extern __shared__ uint8_t flags_smem[];
  __shared__ BlockScratch scratch;
  __shared__ SelectScratch sel;
  __shared__ long long span_count;
  const int64_t b = blockIdx.x;
  const int L = static_cast<int>(a.length);
  const int tid = threadIdx.x;
  const int lane = tid % kWarpSize;
  const int64_t row = b * a.length;
  uint8_t* flags = flags_in_smem ? flags_smem : flags_workspace + row;
  const int64_t* ids = a.input_ids + row;
  const bool* attended = a.attention_mask + row;
  const bool* special = a.special_tokens_mask + row;
  const float* token_noise = a.token_noise + row;
  const float* action_noise = a.action_noise + row;
  const int64_t* random_ids = a.random_ids + row;
  int64_t* masked_ids = a.masked_ids + row;
  int64_t* labels = a.labels + row;

  // 1. Maskable tokens and the budget.
  int local = 0;
  for (int l = tid; l < L; l += kBlockThreads) {
    const bool maskable = attended[l] && !special[l];
    flags[l] = maskable ? kMaskable : 0;
    local += maskable;
  }
  const int maskable_count = block_sum_int(local, scratch);  // also publishes flags
  const MaskBudget budget =
      entity_mask_budget(maskable_count, a.target_ratio, a.min_ratio, a.max_ratio);

  // 2. Whole spans, in listed order (warp 0; the rest of the block waits).
  if (tid < kWarpSize) {
    int64_t span_begin = a.span_offsets[b], span_end = a.span_offsets[b + 1];
    span_begin = span_begin < 0 ? 0 : (span_begin > a.num_spans ? a.num_spans : span_begin);
    span_end = span_end < span_begin ? span_begin : (span_end > a.num_spans ? a.num_spans : span_end);
    int64_t count = 0;
    for (int64_t s = span_begin; s < span_end; ++s) {
      if (!(a.span_noise[s] < a.entity_prob)) continue;
      const int64_t start = a.spans[2 * s], end = a.spans[2 * s + 1];
      if (start < 0 || end > L || end < start) continue;  // malformed: skipped
      int added = 0;
      for (int64_t l = start + lane; l < end; l += kWarpSize) added += flags[l] == kMaskable;
      added = warp_sum(added);
      if (count + added > budget.max) continue;  // uniform over the warp
      for (int64_t l = start + lane; l < end; l += kWarpSize) {
        if (flags[l] & kMaskable) flags[l] = kMaskable | kChosen;
      }
      __syncwarp();
      count += added;
    }
    if (lane == 0) span_count = count;
  }
  __syncthreads();
  const int64_t count = span_count;

  // 3. Top-up selection.
  int64_t need = budget.target - count;
  need = need < 0 ? 0 : (need > L ? L : need);
  auto key_of = [&](int l) {
    return entity_topup_select_key(flags[l] == kMaskable, token_noise[l]);
  };
  const SelectThreshold th = block_radix_select(key_of, L, static_cast<int>(need), scratch, sel);

  // 4. Ordered sweep: rank the tokens equal to the threshold, write the outputs.
  int equal_before = 0;
  for (int base = 0; base < L; base += kBlockThreads) {
    const int l = base + tid;
    const bool in_row = l < L;
    const uint8_t f = in_row ? flags[l] : 0;
    const uint64_t u = in_row ? key_of(l) : 0;
    const bool equal = in_row && !th.none && u == th.threshold;
    int equal_total = 0;
    const int equal_rank = equal_before + block_exclusive_count(equal, equal_total, scratch);
    equal_before += equal_total;
    if (!in_row) continue;
    const bool chosen = (f & kChosen) || select_taken(th, u, equal_rank);
    const int64_t id = ids[l];
    if (chosen) {
      masked_ids[l] = replacement_id(id, action_noise[l], random_ids[l], a.mask_token_id);
      labels[l] = id;
    } else {
      masked_ids[l] = id;
      labels[l] = kIgnoreIndex;
    }
  }
}

}  // namespace

size_t entity_span_mask_workspace_bytes(int64_t B, int64_t L) {
  return L > kFlagsSmemBytes ? static_cast<size_t>(B * L) : 0;
}

cudaError_t launch_entity_span_mask(const EntitySpanMaskArgs& args, void* workspace,
                                    cudaStream_t stream) {
  if (args.batch == 0 || args.length == 0) return cudaSuccess;
  if (args.length > 0x7fffffffLL || args.batch > 0x7fffffffLL) return cudaErrorInvalidValue;
  const bool in_smem = args.length <= kFlagsSmemBytes;
  if (!in_smem && workspace == nullptr) return cudaErrorInvalidValue;
  const size_t smem = in_smem ? static_cast<size_t>(args.length) : 0;
  entity_span_mask_kernel<<<static_cast<unsigned>(args.batch), kBlockThreads, smem, stream>>>(
      args, static_cast<uint8_t*>(workspace), in_smem);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace mmclip
