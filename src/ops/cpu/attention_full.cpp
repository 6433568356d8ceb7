#include "ops/cpu/attention_full.h"

#include <cblas.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"
#include "ops/cpu/softmax.h"

namespace vila::cpu {

namespace {

constexpr int64_t kQueryBlock = 64;  // queries per work item

// OpenBLAS runs single-threaded; parallelism goes through ThreadPool::global() (see matmul.cpp).
void blas_single_threaded() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

}  // namespace

Status attention_full(const TensorView& out, const TensorView& q, const TensorView& k,
                      const TensorView& v, float scale) {
  VILA_RETURN_IF_ERROR(check_f32("attention_full", "q", q));
  VILA_RETURN_IF_ERROR(check_f32("attention_full", "k", k));
  VILA_RETURN_IF_ERROR(check_f32("attention_full", "v", v));
  VILA_RETURN_IF_ERROR(check_f32("attention_full", "out", out));
  if (q.shape.rank != 3 || k.shape.rank != 3 || v.shape != k.shape || out.shape != q.shape ||
      k.dim(1) != q.dim(1) || k.dim(2) != q.dim(2)) {
    return invalid_argument("attention_full: need q, out (T, H, D) and k, v (S, H, D); got q " +
                            q.shape.to_string() + ", k " + k.shape.to_string() + ", v " +
                            v.shape.to_string() + ", out " + out.shape.to_string());
  }
  const int64_t t_count = q.dim(0), n_head = q.dim(1), d = q.dim(2), s_count = k.dim(0);
  if (t_count == 0 || n_head == 0 || d == 0) return ok_status();
  if (s_count == 0) return invalid_argument("attention_full: no keys (S = 0)");
  const int64_t row_stride = n_head * d;  // floats between consecutive positions
  const float* qd = q.as<const float>();
  const float* kd = k.as<const float>();
  const float* vd = v.as<const float>();
  float* od = out.f32();
  blas_single_threaded();

  // Work item = (head, block of kQueryBlock queries). Per item, with single-threaded sgemm on
  // strided head slices (ld = H*D):  scores = scale * q_blk · k_hᵀ;  softmax rows;
  // out_blk = p · v_h.
  const int64_t n_blocks = (t_count + kQueryBlock - 1) / kQueryBlock;
  auto run = [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    const auto need = static_cast<size_t>(kQueryBlock * s_count);
    if (scores.size() < need) scores.resize(need);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item / n_blocks;
      const int64_t t0 = (item % n_blocks) * kQueryBlock;
      const int64_t tq = std::min(kQueryBlock, t_count - t0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(tq),
                  static_cast<blasint>(s_count), static_cast<blasint>(d), scale,
                  qd + t0 * row_stride + h * d, static_cast<blasint>(row_stride), kd + h * d,
                  static_cast<blasint>(row_stride), 0.0f, scores.data(),
                  static_cast<blasint>(s_count));
      for (int64_t t = 0; t < tq; ++t) softmax_row(scores.data() + t * s_count, s_count);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(tq),
                  static_cast<blasint>(d), static_cast<blasint>(s_count), 1.0f, scores.data(),
                  static_cast<blasint>(s_count), vd + h * d, static_cast<blasint>(row_stride), 0.0f,
                  od + t0 * row_stride + h * d, static_cast<blasint>(row_stride));
    }
  };
  const int64_t items = n_head * n_blocks;
  if (items == 1 || t_count * s_count * d < (int64_t{1} << 15)) {
    run(0, items);
  } else {
    ThreadPool::global().parallel_for(items, run);
  }
  return ok_status();
}

}  // namespace vila::cpu
