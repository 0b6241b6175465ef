// Masks half of the patches of a random score map and round-trips tokens through
// masked_gather / masked_scatter; prints "ok" when the result is consistent.
#include <mmclip/ops.h>
#include <torch/torch.h>

#include <iostream>

int main() {
  torch::manual_seed(0);
  const int64_t batch = 2, patches = 8, dim = 4;
  auto scores = torch::rand({batch, patches}).softmax(1);
  auto noise = torch::rand({batch, patches});
  auto [keep_idx, mask_idx, mask] = mmclip::attention_guided_mask(scores, noise, patches / 2, 0.0);
  auto x = torch::randn({batch, patches, dim});
  auto visible = mmclip::masked_gather(x, keep_idx);
  auto token = torch::zeros({dim});
  auto back = mmclip::masked_scatter(visible, keep_idx, token, patches);
  const bool kept_ok = torch::equal(back.index({~mask}), x.index({~mask}));
  const bool masked_ok = back.index({mask}).abs().sum().item<float>() == 0.0f;
  std::cout << (kept_ok && masked_ok ? "ok" : "mismatch") << " masked=" << mask.sum().item<int64_t>()
            << std::endl;
  return kept_ok && masked_ok ? 0 : 1;
}
