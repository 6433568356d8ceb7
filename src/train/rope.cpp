// RoPE tables, forward (the inference rotation) and backward (the inverse rotation).
#include "train/rope.h"

#include <string>

#include "ops/cpu/rope.h"
#include "train/check.h"

namespace vila::train {

namespace {

TensorView table_view(const std::vector<float>& v, const RopeTables& t) {
  return TensorView(const_cast<float*>(v.data()), DType::kF32, {t.tokens, t.half});
}

Status check_x(const char* op, const TensorView& x, const RopeTables& tables) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "x", x));
  if (x.shape.rank != 3 || x.dim(0) != tables.tokens || x.dim(2) != 2 * tables.half) {
    return invalid_argument(std::string(op) + ": x " + x.shape.to_string() + ", expected (" +
                            std::to_string(tables.tokens) + ", H, " +
                            std::to_string(2 * tables.half) + ")");
  }
  const auto table_size = static_cast<size_t>(tables.tokens * tables.half);
  if (tables.cos.size() != table_size || tables.sin.size() != table_size) {
    return invalid_argument(std::string(op) + ": tables are not (T, D/2)");
  }
  return ok_status();
}

}  // namespace

Status rope_tables(RopeTables* tables, const int64_t* positions, int64_t t_count, int64_t head_dim,
                   double theta) {
  if (tables == nullptr) return invalid_argument("rope_tables: tables is null");
  if (t_count < 0 || head_dim <= 0 || head_dim % 2 != 0) {
    return invalid_argument("rope_tables: need T >= 0 and an even head_dim > 0, got T = " +
                            std::to_string(t_count) + ", head_dim = " + std::to_string(head_dim));
  }
  tables->tokens = t_count;
  tables->half = head_dim / 2;
  const auto size = static_cast<size_t>(t_count * tables->half);
  tables->cos.assign(size, 0.0f);
  tables->sin.assign(size, 0.0f);
  return cpu::rope_cos_sin(table_view(tables->cos, *tables), table_view(tables->sin, *tables),
                           positions, theta);
}

Status rope_forward(const TensorView& x, const RopeTables& tables) {
  VILA_RETURN_IF_ERROR(check_x("rope", x, tables));
  return cpu::rope_apply(x, table_view(tables.cos, tables), table_view(tables.sin, tables));
}

Status rope_backward(const TensorView& grad, const RopeTables& tables) {
  VILA_RETURN_IF_ERROR(check_x("rope backward", grad, tables));
  const int64_t t_count = grad.dim(0), n_head = grad.dim(1), half = tables.half;
  float* g = grad.f32();
  for (int64_t t = 0; t < t_count; ++t) {
    const float* c = tables.cos.data() + t * half;
    const float* s = tables.sin.data() + t * half;
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = g + (t * n_head + h) * 2 * half;  // (D) of token t, head h
      for (int64_t i = 0; i < half; ++i) {
        const float dy1 = v[i], dy2 = v[i + half];
        v[i] = dy1 * c[i] + dy2 * s[i];
        v[i + half] = dy2 * c[i] - dy1 * s[i];
      }
    }
  }
  return ok_status();
}

}  // namespace vila::train
