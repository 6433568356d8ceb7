// Media splice forward (scatter rows) and backward (gather rows); see media_splice.h.
#include "train/media_splice.h"

#include <algorithm>
#include <string>
#include <vector>

#include "train/check.h"

namespace vila::train {

namespace {

Status check_splice(const char* op, const TensorView& embeds, const TensorView& feats,
                    const int64_t* rows, int64_t n) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "embeds", embeds));
  if (embeds.shape.rank != 2) {
    return invalid_argument(std::string(op) + ": embeds must be (T, C), got " +
                            embeds.shape.to_string());
  }
  const int64_t t_count = embeds.dim(0), c = embeds.dim(1);
  VILA_RETURN_IF_ERROR(check_matrix(op, "feats", feats, n, c));
  if (n > 0 && rows == nullptr) return invalid_argument(std::string(op) + ": rows is null");
  std::vector<bool> used(static_cast<size_t>(t_count), false);
  for (int64_t i = 0; i < n; ++i) {
    if (rows[i] < 0 || rows[i] >= t_count) {
      return invalid_argument(std::string(op) + ": row " + std::to_string(rows[i]) +
                              " of feature " + std::to_string(i) + " outside [0, " +
                              std::to_string(t_count) + ")");
    }
    if (used[static_cast<size_t>(rows[i])]) {
      return invalid_argument(std::string(op) + ": row " + std::to_string(rows[i]) +
                              " is named twice");
    }
    used[static_cast<size_t>(rows[i])] = true;
  }
  return ok_status();
}

}  // namespace

Status media_splice_forward(const TensorView& embeds, const TensorView& feats, const int64_t* rows,
                            int64_t n) {
  VILA_RETURN_IF_ERROR(check_splice("media_splice", embeds, feats, rows, n));
  const int64_t c = embeds.dim(1);
  for (int64_t i = 0; i < n; ++i) {
    const float* src = feats.as<const float>() + i * c;
    std::copy(src, src + c, embeds.f32() + rows[i] * c);
  }
  return ok_status();
}

Status media_splice_backward(const TensorView& dfeats, const TensorView& dembeds,
                             const int64_t* rows, int64_t n) {
  VILA_RETURN_IF_ERROR(check_splice("media_splice backward", dembeds, dfeats, rows, n));
  const int64_t c = dembeds.dim(1);
  for (int64_t i = 0; i < n; ++i) {
    float* src = dembeds.f32() + rows[i] * c;
    std::copy(src, src + c, dfeats.f32() + i * c);
    std::fill(src, src + c, 0.0f);
  }
  return ok_status();
}

}  // namespace vila::train
