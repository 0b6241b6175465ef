// Block-wide exact top-n selection (radix select) used by attention_guided_mask and
// entity_span_mask. The rules (keys, digit choice, tie handling) are the host/device
// functions of selection.h; this file only parallelises them over a block.
#pragma once

#include <cstdint>

#include "common.cuh"
#include "selection.h"

namespace mmclip {
namespace cuda {

static_assert(kBlockThreads == kRadixBins, "one thread per radix bin");

struct SelectScratch {
  int hist[kRadixBins];
  int digit;
  int above;
};

// Finds the threshold of the n first elements of [0, count) under the order
// (key_of(i) descending, i ascending); see selection.h. 0 <= n <= count.
// Thread mapping: element i is handled by thread i % 256 in every pass; one thread per
// histogram bin. 8 passes of: clear, shared-memory histogram (atomicAdd), block scan
// over the bins from the largest digit down, one thread publishes the chosen digit.
// Must be called by the whole block; key_of must return the same value on every call.
template <class KeyFn>
__device__ SelectThreshold block_radix_select(const KeyFn& key_of, int count, int n,
                                              BlockScratch& scratch, SelectScratch& sel) {
  SelectThreshold result{~uint64_t{0}, 0, true};
  if (n <= 0 || count <= 0) return result;
  if (n > count) n = count;
  const int tid = threadIdx.x;
  uint64_t prefix = 0, known = 0;  // value and mask of the digits chosen so far
  int remaining = n;
  for (int shift = kKeyBits - kRadixBits; shift >= 0; shift -= kRadixBits) {
    sel.hist[tid] = 0;
    __syncthreads();
    for (int i = tid; i < count; i += kBlockThreads) {
      const uint64_t u = key_of(i);
      if ((u & known) == prefix) {
        atomicAdd(&sel.hist[static_cast<int>((u >> shift) & (kRadixBins - 1))], 1);
      }
    }
    __syncthreads();
    // Thread t looks at digit 255 - t, so the inclusive scan counts digits >= it.
    const int digit = kRadixBins - 1 - tid;
    const int here = sel.hist[digit];
    const int at_or_above = block_inclusive_scan(here, scratch);
    const int above = at_or_above - here;
    if (above < remaining && remaining <= at_or_above) {  // exactly one thread
      sel.digit = digit;
      sel.above = above;
    }
    __syncthreads();
    prefix |= static_cast<uint64_t>(sel.digit) << shift;
    known |= static_cast<uint64_t>(kRadixBins - 1) << shift;
    remaining -= sel.above;
    __syncthreads();  // everyone has read sel before the next pass overwrites it
  }
  result.threshold = prefix;
  result.take_equal = remaining;
  result.none = false;
  return result;
}

}  // namespace cuda
}  // namespace mmclip
