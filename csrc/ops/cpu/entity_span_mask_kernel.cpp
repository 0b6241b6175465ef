// CPU kernel of mmclip::entity_span_mask: one sample per task; spans first, then a
// partial selection (nth_element) of the top-up tokens by their noise.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../backend_entry.h"
#include "../kernel_math.h"

namespace mmclip {
namespace {

void check_span_values(const int64_t* offsets, const int64_t* spans, int64_t batch,
                       int64_t num_spans, int64_t length) {
  TORCH_CHECK(offsets[0] == 0, "span_offsets[0] must be 0, got ", offsets[0]);
  TORCH_CHECK(offsets[batch] == num_spans, "span_offsets[-1] must equal the span count ",
              num_spans, ", got ", offsets[batch]);
  for (int64_t b = 0; b < batch; ++b) {
    TORCH_CHECK(offsets[b] <= offsets[b + 1], "span_offsets must be non-decreasing; [", b,
                "] = ", offsets[b], " > [", b + 1, "] = ", offsets[b + 1]);
  }
  for (int64_t s = 0; s < num_spans; ++s) {
    const int64_t start = spans[2 * s], end = spans[2 * s + 1];
    TORCH_CHECK(start >= 0 && start <= end && end <= length, "spans[", s, "] = (", start, ", ",
                end, ") lies outside the sequence [0, ", length, ") or ends before it starts");
  }
}

struct SampleView {
  const int64_t* ids;
  const bool* attended;
  const bool* special;
  const float* token_noise;
  const float* action_noise;
  const int64_t* random_ids;
  int64_t* masked_ids;
  int64_t* labels;
};

struct MaskSettings {
  double entity_prob, target_ratio, min_ratio, max_ratio;
  int64_t mask_token_id;
};

void mask_sample(const SampleView& v, int64_t length, const int64_t* spans, const float* span_noise,
                 int64_t span_begin, int64_t span_end, const MaskSettings& cfg,
                 std::vector<char>& chosen, std::vector<int64_t>& candidates) {
  chosen.assign(length, 0);
  int64_t maskable = 0;
  for (int64_t l = 0; l < length; ++l) maskable += v.attended[l] && !v.special[l];
  const MaskBudget budget =
      entity_mask_budget(maskable, cfg.target_ratio, cfg.min_ratio, cfg.max_ratio);
  const float entity_prob = static_cast<float>(cfg.entity_prob);
  int64_t count = 0;
  for (int64_t s = span_begin; s < span_end; ++s) {
    if (!(span_noise[s] < entity_prob)) continue;
    const int64_t start = spans[2 * s], end = spans[2 * s + 1];
    int64_t added = 0;
    for (int64_t l = start; l < end; ++l) added += v.attended[l] && !v.special[l] && !chosen[l];
    if (count + added > budget.max) continue;
    for (int64_t l = start; l < end; ++l) {
      if (v.attended[l] && !v.special[l]) chosen[l] = 1;
    }
    count += added;
  }
  const int64_t need = budget.target - count;
  if (need > 0) {
    candidates.clear();
    for (int64_t l = 0; l < length; ++l) {
      if (v.attended[l] && !v.special[l] && !chosen[l]) candidates.push_back(l);
    }
    auto smaller = [&](int64_t a, int64_t b) {
      return v.token_noise[a] < v.token_noise[b] || (v.token_noise[a] == v.token_noise[b] && a < b);
    };
    std::nth_element(candidates.begin(), candidates.begin() + (need - 1), candidates.end(), smaller);
    for (int64_t r = 0; r < need; ++r) chosen[candidates[r]] = 1;
  }
  for (int64_t l = 0; l < length; ++l) {
    const int64_t id = v.ids[l];
    if (chosen[l]) {
      v.masked_ids[l] = replacement_id(id, v.action_noise[l], v.random_ids[l], cfg.mask_token_id);
      v.labels[l] = id;
    } else {
      v.masked_ids[l] = id;
      v.labels[l] = kIgnoreIndex;
    }
  }
}

void entity_span_mask_cpu(const SpanMaskTensors& t) {
  const int64_t batch = t.input_ids.size(0), length = t.input_ids.size(1);
  const int64_t* offsets = t.span_offsets.data_ptr<int64_t>();
  const int64_t* span_ptr = t.spans.data_ptr<int64_t>();
  check_span_values(offsets, span_ptr, batch, t.spans.size(0), length);
  if (batch == 0 || length == 0) return;

  const MaskSettings cfg{t.entity_prob, t.target_ratio, t.min_ratio, t.max_ratio, t.mask_token_id};
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<char> chosen;
    std::vector<int64_t> candidates;
    candidates.reserve(length);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t row = b * length;
      const SampleView view{t.input_ids.data_ptr<int64_t>() + row,
                            t.attention_mask.data_ptr<bool>() + row,
                            t.special_tokens_mask.data_ptr<bool>() + row,
                            t.token_noise.data_ptr<float>() + row,
                            t.action_noise.data_ptr<float>() + row,
                            t.random_ids.data_ptr<int64_t>() + row,
                            t.masked_ids.data_ptr<int64_t>() + row,
                            t.labels.data_ptr<int64_t>() + row};
      mask_sample(view, length, span_ptr, t.span_noise.data_ptr<float>(), offsets[b],
                  offsets[b + 1], cfg, chosen, candidates);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(mmclip, CPU, m) {
  m.impl("entity_span_mask", &entity_span_mask_op<entity_span_mask_cpu>);
}

}  // namespace mmclip
