#include "ops/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"

namespace vila::cpu {

void softmax_row(float* row, int64_t n) {
  if (n <= 0) return;
  float max_value = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max_value = std::max(max_value, row[i]);
  if (max_value == -std::numeric_limits<float>::infinity()) max_value = 0.0f;  // all masked
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    row[i] = std::exp(row[i] - max_value);
    sum += row[i];
  }
  const float inv_sum = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
  for (int64_t i = 0; i < n; ++i) row[i] *= inv_sum;
}

Status softmax(const TensorView& out, const TensorView& x) {
  VILA_RETURN_IF_ERROR(check_f32("softmax", "x", x));
  VILA_RETURN_IF_ERROR(check_f32("softmax", "out", out));
  VILA_RETURN_IF_ERROR(check_same_shape("softmax", "out", out, "x", x));
  const int64_t n = last_dim(x);
  const int64_t rows = row_count(x);
  const float* in = x.as<const float>();
  float* y = out.f32();
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      if (y != in) std::copy(in + r * n, in + (r + 1) * n, y + r * n);
      softmax_row(y + r * n, n);
    }
  };
  if (rows * n < (int64_t{1} << 16)) {
    run(0, rows);
  } else {
    ThreadPool::global().parallel_for(rows, run);
  }
  return ok_status();
}

}  // namespace vila::cpu
