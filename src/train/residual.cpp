// Residual add forward / backward and gradient accumulation (see residual.h).
#include "train/residual.h"

#include <algorithm>

#include "train/check.h"

namespace vila::train {

namespace {

Status check_like(const char* op, const char* name, const TensorView& t, const TensorView& ref) {
  return check_matrix(op, name, t, cpu::row_count(ref), cpu::last_dim(ref));
}

}  // namespace

Status add_forward(const TensorView& y, const TensorView& a, const TensorView& b) {
  VILA_RETURN_IF_ERROR(check_like("add", "a", a, a));
  VILA_RETURN_IF_ERROR(check_like("add", "b", b, a));
  VILA_RETURN_IF_ERROR(check_like("add", "y", y, a));
  const float* as = a.as<const float>();
  const float* bs = b.as<const float>();
  float* ys = y.f32();
  for (int64_t i = 0; i < a.numel(); ++i) ys[i] = as[i] + bs[i];
  return ok_status();
}

Status add_backward(const TensorView& da, const TensorView& db, const TensorView& dy) {
  VILA_RETURN_IF_ERROR(check_like("add backward", "dy", dy, dy));
  VILA_RETURN_IF_ERROR(
      check_optional_matrix("add backward", "da", da, cpu::row_count(dy), cpu::last_dim(dy)));
  VILA_RETURN_IF_ERROR(
      check_optional_matrix("add backward", "db", db, cpu::row_count(dy), cpu::last_dim(dy)));
  const float* g = dy.as<const float>();
  for (const TensorView* d : {&da, &db}) {
    if (!d->empty() && d->data != dy.data) std::copy(g, g + dy.numel(), d->f32());
  }
  return ok_status();
}

Status accumulate_grad(const TensorView& dst, const TensorView& src) {
  VILA_RETURN_IF_ERROR(check_like("accumulate_grad", "dst", dst, dst));
  VILA_RETURN_IF_ERROR(check_like("accumulate_grad", "src", src, dst));
  float* d = dst.f32();
  const float* s = src.as<const float>();
  for (int64_t i = 0; i < dst.numel(); ++i) d[i] += s[i];
  return ok_status();
}

}  // namespace vila::train
