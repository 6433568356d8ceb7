// Embedding forward (the inference gather) and backward (scatter-add into the table gradient).
#include "train/embedding.h"

#include <string>

#include "ops/cpu/embedding.h"
#include "train/check.h"

namespace vila::train {

namespace {

constexpr const char* kOp = "embedding";

Status check_table(const char* name, const TensorView& table) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(kOp, name, table));
  if (table.shape.rank != 2 || table.empty()) {
    return invalid_argument(std::string("embedding: ") + name + " must be (V, C), got " +
                            table.shape.to_string());
  }
  return ok_status();
}

}  // namespace

Status embedding_forward(const TensorView& out, const TensorView& table, const int32_t* ids,
                         int64_t n) {
  VILA_RETURN_IF_ERROR(check_table("table", table));
  return cpu::embedding(out, table, ids, n);
}

Status embedding_backward(const TensorView& dtable, const TensorView& dout, const int32_t* ids,
                          int64_t n) {
  VILA_RETURN_IF_ERROR(check_table("dtable", dtable));
  const int64_t vocab = dtable.dim(0), c = dtable.dim(1);
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "dout", dout, n, c));
  if (n > 0 && ids == nullptr) return invalid_argument("embedding: ids is null");
  for (int64_t i = 0; i < n; ++i) {  // all ids checked before anything is written
    if (ids[i] < 0 || ids[i] >= vocab) {
      return invalid_argument("embedding backward: token id " + std::to_string(ids[i]) +
                              " at position " + std::to_string(i) + " outside [0, " +
                              std::to_string(vocab) + ")");
    }
  }
  const float* g = dout.as<const float>();
  float* dt = dtable.f32();
  for (int64_t i = 0; i < n; ++i) {
    float* row = dt + static_cast<int64_t>(ids[i]) * c;
    const float* src = g + i * c;
    for (int64_t j = 0; j < c; ++j) row[j] += src[j];
  }
  return ok_status();
}

}  // namespace vila::train
