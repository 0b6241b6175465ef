// The one declaration of the `mmclip` operator namespace.
#include <torch/library.h>

#include "operator_decls.h"

TORCH_LIBRARY(mmclip, m) {
  mmclip::define_cross_modal_attention_score(m);
  mmclip::define_attention_guided_mask(m);
  mmclip::define_masked_gather_scatter(m);
  mmclip::define_entity_span_mask(m);
}
