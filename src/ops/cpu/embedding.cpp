#include "ops/cpu/embedding.h"

#include <string>

#include "ops/cpu/op_check.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {

Status embedding(const TensorView& out, const TensorView& table, const int32_t* ids, int64_t n) {
  VILA_RETURN_IF_ERROR(check_f32("embedding", "out", out));
  if (table.shape.rank != 2 || !is_weight_dtype(table.dtype) || table.empty()) {
    return invalid_argument("embedding: table must be a (V, C) f32/bf16/f16 tensor, got " +
                            table.shape.to_string() + " " + dtype_name(table.dtype));
  }
  const int64_t vocab = table.dim(0);
  const int64_t c = table.dim(1);
  if (last_dim(out) != c || row_count(out) != n) {
    return invalid_argument("embedding: out " + out.shape.to_string() + ", expected (" +
                            std::to_string(n) + ", " + std::to_string(c) + ")");
  }
  if (n > 0 && ids == nullptr) return invalid_argument("embedding: ids is null");
  const auto* base = static_cast<const uint8_t*>(table.data);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= vocab) {
      return invalid_argument("embedding: token id " + std::to_string(id) + " at position " +
                              std::to_string(i) + " outside [0, " + std::to_string(vocab) + ")");
    }
    vec_to_f32(table.dtype, base + dtype_bytes(table.dtype, id * c), out.f32() + i * c, c);
  }
  return ok_status();
}

}  // namespace vila::cpu
