// Media splicing for training: the projected image features replace the embedding rows of the
// image placeholder tokens.
//
// Forward (in place):  embeds (T, C)[rows[i]] = feats (N, C)[i]          for i < N
// Backward:            dfeats (N, C)[i] = dembeds (T, C)[rows[i]]        (gather, written)
//                      dembeds[rows[i]] = 0   (those embedding rows were overwritten, so no
//                      gradient reaches the token table through them; done in place)
// rows are distinct and in [0, T). Saved state: none.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

Status media_splice_forward(const TensorView& embeds, const TensorView& feats, const int64_t* rows,
                            int64_t n);

Status media_splice_backward(const TensorView& dfeats, const TensorView& dembeds,
                             const int64_t* rows, int64_t n);

}  // namespace vila::train
