// Attention forward / backward with a saved softmax (see attention.h for the math).
#include "train/attention.h"

#include <algorithm>
#include <string>

#include "core/thread_pool.h"
#include "ops/cpu/softmax.h"
#include "ops/cpu/vec.h"
#include "train/check.h"
#include "train/packing.h"

namespace vila::train {

namespace {

// Below this many multiply-adds the loops run on the calling thread.
constexpr int64_t kParallelMinWork = int64_t{1} << 14;

struct Dims {
  int64_t t = 0, h = 0, hkv = 0, d = 0;
  int64_t group() const { return h / hkv; }
};

StatusOr<Dims> check_qkv(const char* op, const TensorView& q, const TensorView& k,
                         const TensorView& v) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "q", q));
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "k", k));
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "v", v));
  if (q.shape.rank != 3 || k.shape.rank != 3 || v.shape != k.shape || k.dim(0) != q.dim(0) ||
      k.dim(2) != q.dim(2) || k.dim(1) <= 0 || q.dim(1) % k.dim(1) != 0) {
    return invalid_argument(
        std::string(op) + ": need q (T, H, D) and k, v (T, Hkv, D) with H % Hkv == 0; got q " +
        q.shape.to_string() + ", k " + k.shape.to_string() + ", v " + v.shape.to_string());
  }
  return Dims{q.dim(0), q.dim(1), k.dim(1), q.dim(2)};
}

Status check_like(const char* op, const char* name, const TensorView& t, const Shape& shape) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, name, t));
  if (t.empty() || t.shape != shape) {
    return invalid_argument(std::string(op) + ": " + name + " has shape " + t.shape.to_string() +
                            ", expected " + shape.to_string());
  }
  return ok_status();
}

// Runs fn(begin, end) over [0, n) on the pool when the work is large enough.
template <typename Fn>
void run_items(int64_t n, int64_t work, const Fn& fn) {
  if (work < kParallelMinWork) {
    fn(int64_t{0}, n);
  } else {
    ThreadPool::global().parallel_for(n, fn);
  }
}

}  // namespace

Status attention_forward(const TensorView& out, const TensorView& q, const TensorView& k,
                         const TensorView& v, const int32_t* segments, AttentionMask mask,
                         float scale, AttentionSaved* saved) {
  constexpr const char* kOp = "attention";
  VILA_ASSIGN_OR_RETURN(const Dims dims, check_qkv(kOp, q, k, v));
  VILA_RETURN_IF_ERROR(check_like(kOp, "out", out, q.shape));
  if (saved == nullptr) return invalid_argument("attention: saved is null");
  if (out.data == q.data || out.data == k.data || out.data == v.data) {
    return invalid_argument("attention: out aliases q, k or v");
  }
  VILA_ASSIGN_OR_RETURN(SegmentBounds bounds, segment_bounds(segments, dims.t));
  const int64_t t_count = dims.t, n_head = dims.h, d = dims.d, group = dims.group();
  saved->tokens = t_count;
  saved->heads = n_head;
  saved->scale = scale;
  saved->key_begin = std::move(bounds.begin);
  saved->key_end = std::move(bounds.end);
  if (mask == AttentionMask::kCausal) {
    for (int64_t t = 0; t < t_count; ++t) saved->key_end[static_cast<size_t>(t)] = t + 1;
  }
  saved->probs.assign(static_cast<size_t>(n_head * t_count * t_count), 0.0f);

  const int64_t kv_stride = dims.hkv * d;  // floats between consecutive tokens of k / v
  const float* qd = q.as<const float>();
  const float* kd = k.as<const float>();
  const float* vd = v.as<const float>();
  float* od = out.f32();
  // Item h * T + t: one (head, query) row, the same arithmetic as cpu::attention_causal.
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item / t_count, t = item % t_count, g = h / group;
      const int64_t j0 = saved->key_begin[static_cast<size_t>(t)];
      const int64_t j1 = saved->key_end[static_cast<size_t>(t)];
      const float* q_row = qd + (t * n_head + h) * d;
      float* p = saved->probs.data() + (h * t_count + t) * t_count;  // (T) row of P
      for (int64_t j = j0; j < j1; ++j) {
        p[j] = cpu::vec_dot_f32(q_row, kd + j * kv_stride + g * d, d) * scale;
      }
      cpu::softmax_row(p + j0, j1 - j0);
      float* o_row = od + (t * n_head + h) * d;
      std::fill(o_row, o_row + d, 0.0f);
      for (int64_t j = j0; j < j1; ++j)
        cpu::vec_axpy_f32(o_row, p[j], vd + j * kv_stride + g * d, d);
    }
  };
  run_items(n_head * t_count, n_head * t_count * t_count * d, run);
  return ok_status();
}

Status attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                          const TensorView& dout, const TensorView& q, const TensorView& k,
                          const TensorView& v, const AttentionSaved& saved) {
  constexpr const char* kOp = "attention backward";
  VILA_ASSIGN_OR_RETURN(const Dims dims, check_qkv(kOp, q, k, v));
  VILA_RETURN_IF_ERROR(check_like(kOp, "dout", dout, q.shape));
  VILA_RETURN_IF_ERROR(check_like(kOp, "dq", dq, q.shape));
  VILA_RETURN_IF_ERROR(check_like(kOp, "dk", dk, k.shape));
  VILA_RETURN_IF_ERROR(check_like(kOp, "dv", dv, v.shape));
  const int64_t t_count = dims.t, n_head = dims.h, d = dims.d, group = dims.group();
  if (saved.tokens != t_count || saved.heads != n_head ||
      saved.probs.size() != static_cast<size_t>(n_head * t_count * t_count) ||
      saved.key_begin.size() != static_cast<size_t>(t_count) ||
      saved.key_end.size() != static_cast<size_t>(t_count)) {
    return invalid_argument(
        "attention backward: saved state is for T = " + std::to_string(saved.tokens) +
        ", H = " + std::to_string(saved.heads) + ", got q " + q.shape.to_string());
  }
  const int64_t kv_stride = dims.hkv * d;
  const float scale = saved.scale;
  const float* qd = q.as<const float>();
  const float* kd = k.as<const float>();
  const float* vd = v.as<const float>();
  const float* god = dout.as<const float>();
  float* dqd = dq.f32();
  float* dkd = dk.f32();
  float* dvd = dv.f32();
  std::fill(dkd, dkd + dk.numel(), 0.0f);
  std::fill(dvd, dvd + dv.numel(), 0.0f);

  // One item per kv head g: only its query heads write dk[:, g] and dv[:, g], so items are
  // independent.
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> ds(static_cast<size_t>(t_count));  // (T) dP, then dS, of one row
    for (int64_t g = begin; g < end; ++g) {
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t t = 0; t < t_count; ++t) {
          const int64_t j0 = saved.key_begin[static_cast<size_t>(t)];
          const int64_t j1 = saved.key_end[static_cast<size_t>(t)];
          const float* p = saved.probs.data() + (h * t_count + t) * t_count;
          const float* go = god + (t * n_head + h) * d;
          double p_dot_dp = 0.0;  // sum_j P_j dP_j
          for (int64_t j = j0; j < j1; ++j) {
            const float dp = cpu::vec_dot_f32(go, vd + j * kv_stride + g * d, d);
            ds[static_cast<size_t>(j)] = dp;
            p_dot_dp += static_cast<double>(p[j]) * dp;
            cpu::vec_axpy_f32(dvd + j * kv_stride + g * d, p[j], go, d);
          }
          const auto sum = static_cast<float>(p_dot_dp);
          const float* q_row = qd + (t * n_head + h) * d;
          float* dq_row = dqd + (t * n_head + h) * d;
          std::fill(dq_row, dq_row + d, 0.0f);
          for (int64_t j = j0; j < j1; ++j) {
            const float dsj = p[j] * (ds[static_cast<size_t>(j)] - sum) * scale;
            cpu::vec_axpy_f32(dq_row, dsj, kd + j * kv_stride + g * d, d);
            cpu::vec_axpy_f32(dkd + j * kv_stride + g * d, dsj, q_row, d);
          }
        }
      }
    }
  };
  run_items(dims.hkv, n_head * t_count * t_count * d, run);
  return ok_status();
}

}  // namespace vila::train
