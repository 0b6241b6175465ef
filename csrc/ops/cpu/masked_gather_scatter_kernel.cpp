// CPU kernels of mmclip::masked_gather / masked_scatter and their backward operators.
// Rows are copied with std::copy_n (memcpy for trivially copyable types); every index
// is checked against the patch count before it is used.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../checks.h"
#include "../operator_decls.h"

namespace mmclip {
namespace {

inline void check_index_value(int64_t value, int64_t upper, const char* name, int64_t b,
                              int64_t j) {
  TORCH_CHECK(value >= 0 && value < upper, name, "[", b, ", ", j, "] = ", value,
              " is out of range [0, ", upper, ")");
}

// Marks kept[p] for every p in the row; rejects out-of-range and repeated indices.
inline void mark_kept_row(const int64_t* row, int64_t count, int64_t patches, int64_t b,
                          std::vector<char>& kept) {
  kept.assign(patches, 0);
  for (int64_t j = 0; j < count; ++j) {
    const int64_t p = row[j];
    check_index_value(p, patches, "keep_idx", b, j);
    TORCH_CHECK(!kept[p], "keep_idx must hold distinct indices per row; row ", b, " repeats ", p);
    kept[p] = 1;
  }
}

at::Tensor masked_gather_cpu(const at::Tensor& x, const at::Tensor& idx) {
  check_masked_gather_inputs(x, idx);
  const int64_t batch = x.size(0), patches = x.size(1), dim = x.size(2), count = idx.size(1);
  auto out = at::empty({batch, count, dim}, x.options());
  if (out.numel() == 0) return out;
  const auto x_c = x.contiguous();
  const auto idx_c = idx.contiguous();
  const int64_t* idx_ptr = idx_c.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch * count; ++i) {
    check_index_value(idx_ptr[i], patches, "idx", i / count, i % count);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "masked_gather", [&] {
    const scalar_t* src = x_c.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(dim, 1));
    at::parallel_for(0, batch * count, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / count;
        std::copy_n(src + (b * patches + idx_ptr[i]) * dim, dim, dst + i * dim);
      }
    });
  });
  return out;
}

at::Tensor masked_gather_backward_cpu(const at::Tensor& grad, const at::Tensor& idx,
                                      int64_t num_patches) {
  check_masked_gather_backward_inputs(grad, idx, num_patches);
  const int64_t batch = grad.size(0), count = grad.size(1), dim = grad.size(2);
  if (count == 0) return at::zeros({batch, num_patches, dim}, grad.options());
  // Every row of out is written below (a gradient row or zeros): no separate zero fill.
  auto out = at::empty({batch, num_patches, dim}, grad.options());
  if (out.numel() == 0) return out;
  const auto g_c = grad.contiguous();
  const auto idx_c = idx.contiguous();
  const int64_t* idx_ptr = idx_c.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch * count; ++i) {
    check_index_value(idx_ptr[i], num_patches, "idx", i / count, i % count);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "masked_gather_backward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* src = g_c.data_ptr<scalar_t>();
        scalar_t* dst = out.data_ptr<scalar_t>();
        // One sample per task: a sample's rows never race with another's.
        at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
          std::vector<acc_t> acc;
          std::vector<int64_t> source(num_patches);  // the j feeding patch p, -1 none, -2 several
          for (int64_t b = begin; b < end; ++b) {
            const int64_t* row = idx_ptr + b * count;
            std::fill(source.begin(), source.end(), int64_t{-1});
            bool repeats = false;
            for (int64_t j = 0; j < count; ++j) {
              int64_t& s = source[row[j]];
              repeats |= s != -1;
              s = s == -1 ? j : -2;
            }
            scalar_t* out_b = dst + b * num_patches * dim;
            const scalar_t* g_b = src + b * count * dim;
            if (!repeats) {
              for (int64_t p = 0; p < num_patches; ++p) {
                if (source[p] >= 0) {
                  std::copy_n(g_b + source[p] * dim, dim, out_b + p * dim);
                } else {
                  std::fill_n(out_b + p * dim, dim, scalar_t(0));
                }
              }
              continue;
            }
            acc.assign(num_patches * dim, acc_t(0));
            for (int64_t j = 0; j < count; ++j) {
              acc_t* a = acc.data() + row[j] * dim;
              const scalar_t* g = g_b + j * dim;
              for (int64_t d = 0; d < dim; ++d) a[d] += static_cast<acc_t>(g[d]);
            }
            for (int64_t i = 0; i < num_patches * dim; ++i) out_b[i] = static_cast<scalar_t>(acc[i]);
          }
        });
      });
  return out;
}

at::Tensor masked_scatter_cpu(const at::Tensor& visible, const at::Tensor& keep_idx,
                              const at::Tensor& mask_token, int64_t num_patches) {
  check_masked_scatter_inputs(visible, keep_idx, mask_token, num_patches);
  const int64_t batch = visible.size(0), count = visible.size(1), dim = visible.size(2);
  auto out = at::empty({batch, num_patches, dim}, visible.options());
  if (batch == 0 || num_patches == 0) return out;
  const auto v_c = visible.contiguous();
  const auto idx_c = keep_idx.contiguous();
  const auto t_c = mask_token.contiguous();
  const int64_t* idx_ptr = idx_c.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, visible.scalar_type(), "masked_scatter", [&] {
    const scalar_t* src = v_c.data_ptr<scalar_t>();
    const scalar_t* token = t_c.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<char> kept;
      for (int64_t b = begin; b < end; ++b) {
        const int64_t* row = idx_ptr + b * count;
        mark_kept_row(row, count, num_patches, b, kept);
        scalar_t* out_b = dst + b * num_patches * dim;
        for (int64_t j = 0; j < count; ++j) {
          std::copy_n(src + (b * count + j) * dim, dim, out_b + row[j] * dim);
        }
        for (int64_t p = 0; p < num_patches; ++p) {
          if (!kept[p]) std::copy_n(token, dim, out_b + p * dim);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> masked_scatter_backward_cpu(const at::Tensor& grad,
                                                               const at::Tensor& keep_idx) {
  check_masked_scatter_backward_inputs(grad, keep_idx);
  const int64_t batch = grad.size(0), patches = grad.size(1), dim = grad.size(2);
  const int64_t count = keep_idx.size(1);
  auto grad_visible = at::empty({batch, count, dim}, grad.options());
  auto grad_token = at::zeros({dim}, grad.options());
  if (batch == 0 || dim == 0) return {grad_visible, grad_token};
  const auto g_c = grad.contiguous();
  const auto idx_c = keep_idx.contiguous();
  const int64_t* idx_ptr = idx_c.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "masked_scatter_backward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const scalar_t* src = g_c.data_ptr<scalar_t>();
        scalar_t* dst = grad_visible.data_ptr<scalar_t>();
        // Partial token sums per task, added in task order: deterministic for a thread count.
        const int64_t grain = 1;
        const int64_t tasks = std::min<int64_t>(batch, at::get_num_threads());
        std::vector<acc_t> partial(tasks * dim, acc_t(0));
        const int64_t per_task = (batch + tasks - 1) / tasks;
        at::parallel_for(0, tasks, grain, [&](int64_t t_begin, int64_t t_end) {
          std::vector<char> kept;
          for (int64_t t = t_begin; t < t_end; ++t) {
            acc_t* sum = partial.data() + t * dim;
            for (int64_t b = t * per_task; b < std::min(batch, (t + 1) * per_task); ++b) {
              const int64_t* row = idx_ptr + b * count;
              mark_kept_row(row, count, patches, b, kept);
              const scalar_t* g_b = src + b * patches * dim;
              for (int64_t j = 0; j < count; ++j) {
                std::copy_n(g_b + row[j] * dim, dim, dst + (b * count + j) * dim);
              }
              for (int64_t p = 0; p < patches; ++p) {
                if (kept[p]) continue;
                const scalar_t* g = g_b + p * dim;
                for (int64_t d = 0; d < dim; ++d) sum[d] += static_cast<acc_t>(g[d]);
              }
            }
          }
        });
        scalar_t* token = grad_token.data_ptr<scalar_t>();
        for (int64_t d = 0; d < dim; ++d) {
          acc_t total = 0;
          for (int64_t t = 0; t < tasks; ++t) total += partial[t * dim + d];
          token[d] = static_cast<scalar_t>(total);
        }
      });
  return {grad_visible, grad_token};
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CPU, m) {
  m.impl("masked_gather", &masked_gather_cpu);
  m.impl("masked_gather_backward", &masked_gather_backward_cpu);
  m.impl("masked_scatter", &masked_scatter_cpu);
  m.impl("masked_scatter_backward", &masked_scatter_backward_cpu);
}

}  // namespace mmclip
