#include "ops/cpu/attention.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"
#include "ops/cpu/softmax.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {

Status attention_causal(const TensorView& out, const TensorView& q, const TensorView& k,
                        const TensorView& v, int64_t p0, float scale) {
  VILA_RETURN_IF_ERROR(check_f32("attention", "q", q));
  VILA_RETURN_IF_ERROR(check_f32("attention", "k", k));
  VILA_RETURN_IF_ERROR(check_f32("attention", "v", v));
  VILA_RETURN_IF_ERROR(check_f32("attention", "out", out));
  if (q.shape.rank != 3 || k.shape.rank != 3 || v.shape != k.shape || out.shape != q.shape) {
    return invalid_argument("attention: need q, out (T, H, D) and k, v (S, Hkv, D); got q " +
                            q.shape.to_string() + ", k " + k.shape.to_string() + ", v " +
                            v.shape.to_string() + ", out " + out.shape.to_string());
  }
  const int64_t t_count = q.dim(0);
  const int64_t n_head = q.dim(1);
  const int64_t d = q.dim(2);
  const int64_t n_head_kv = k.dim(1);
  if (k.dim(2) != d || n_head_kv <= 0 || n_head % n_head_kv != 0) {
    return invalid_argument("attention: q " + q.shape.to_string() + " and k " +
                            k.shape.to_string() + ": head_dim must match and H % Hkv == 0");
  }
  if (p0 < 0 || p0 + t_count > k.dim(0)) {
    return out_of_range("attention: positions [" + std::to_string(p0) + ", " +
                        std::to_string(p0 + t_count) + ") exceed the cache of " +
                        std::to_string(k.dim(0)));
  }
  const int64_t group = n_head / n_head_kv;
  const int64_t kv_stride = n_head_kv * d;  // floats between consecutive cache positions
  const float* qd = q.as<const float>();
  const float* kd = k.as<const float>();
  const float* vd = v.as<const float>();
  float* od = out.f32();

  // Work item i = h * T + t: consecutive items share a head, so a thread's keys stay in cache.
  auto run = [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    const auto max_keys = static_cast<size_t>(p0 + t_count);
    if (scores.size() < max_keys) scores.resize(max_keys);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item / t_count;
      const int64_t t = item % t_count;
      const int64_t h_kv = h / group;
      const int64_t n_keys = p0 + t + 1;
      const float* q_row = qd + (t * n_head + h) * d;
      const float* k_head = kd + h_kv * d;
      const float* v_head = vd + h_kv * d;
      float* o_row = od + (t * n_head + h) * d;

      for (int64_t j = 0; j < n_keys; ++j) {  // scores = q · kᵀ * scale
        scores[static_cast<size_t>(j)] = vec_dot_f32(q_row, k_head + j * kv_stride, d) * scale;
      }
      softmax_row(scores.data(), n_keys);
      std::fill(o_row, o_row + d, 0.0f);  // out = p · v
      for (int64_t j = 0; j < n_keys; ++j) {
        vec_axpy_f32(o_row, scores[static_cast<size_t>(j)], v_head + j * kv_stride, d);
      }
    }
  };
  const int64_t items = n_head * t_count;
  const int64_t work = items * (p0 + t_count) * d;
  if (work < (int64_t{1} << 14)) {
    run(0, items);
  } else {
    ThreadPool::global().parallel_for(items, run);
  }
  return ok_status();
}

}  // namespace vila::cpu
