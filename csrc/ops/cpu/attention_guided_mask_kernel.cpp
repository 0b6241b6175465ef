// CPU kernel of mmclip::attention_guided_mask: per row, Gumbel keys in float64, a
// selection of the n_mask largest (nth_element, O(P)), then one ordered pass that
// writes the ascending keep / mask indices and the boolean mask.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <tuple>
#include <vector>

#include "../backend_entry.h"
#include "../checks.h"
#include "../kernel_math.h"

namespace mmclip {
namespace {

template <typename scalar_t>
void guided_mask_rows(const scalar_t* scores, const float* noise, int64_t batch, int64_t patches,
                      int64_t n_mask, double tau, int64_t* keep_idx, int64_t* mask_idx,
                      bool* mask) {
  const int64_t n_keep = patches - n_mask;
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> keys(patches);
    std::vector<int64_t> order(patches);
    for (int64_t b = begin; b < end; ++b) {
      const scalar_t* s_row = scores + b * patches;
      const float* u_row = noise + b * patches;
      for (int64_t p = 0; p < patches; ++p) {
        keys[p] = gumbel_key(static_cast<double>(s_row[p]), u_row[p], tau);
      }
      std::iota(order.begin(), order.end(), int64_t{0});
      bool* m_row = mask + b * patches;
      std::fill(m_row, m_row + patches, false);
      if (n_mask > 0 && n_mask < patches) {
        std::nth_element(order.begin(), order.begin() + (n_mask - 1), order.end(),
                         [&](int64_t i, int64_t j) { return key_before(keys[i], i, keys[j], j); });
      }
      for (int64_t r = 0; r < n_mask; ++r) m_row[order[r]] = true;
      int64_t* keep_row = keep_idx + b * n_keep;
      int64_t* mask_row = mask_idx + b * n_mask;
      for (int64_t p = 0; p < patches; ++p) {
        if (m_row[p]) {
          *mask_row++ = p;
        } else {
          *keep_row++ = p;
        }
      }
    }
  });
}

void attention_guided_mask_cpu(const GuidedMaskTensors& t) {
  const int64_t batch = t.scores.size(0), patches = t.scores.size(1);
  if (batch == 0 || patches == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, t.scores.scalar_type(), "attention_guided_mask", [&] {
        guided_mask_rows<scalar_t>(t.scores.data_ptr<scalar_t>(), t.noise.data_ptr<float>(), batch,
                                   patches, t.n_mask, t.tau, t.keep_idx.data_ptr<int64_t>(),
                                   t.mask_idx.data_ptr<int64_t>(), t.mask.data_ptr<bool>());
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CPU, m) {
  m.impl("attention_guided_mask", &attention_guided_mask_op<attention_guided_mask_cpu>);
}

}  // namespace mmclip
