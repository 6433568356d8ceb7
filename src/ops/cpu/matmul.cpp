#include "ops/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {

namespace {

// Below this many multiply-adds a GEMV is not worth waking the pool for.
constexpr int64_t kGemvParallelMinMacs = int64_t{1} << 15;
// Weight rows per GEMV block (reused across the M inputs while cached).
constexpr int64_t kGemvBlockRows = 16;
// Elements of one fp32 weight panel per thread in the bf16/f16 GEMM path (4 MiB). Each sgemm call
// re-packs the activations, so panels must be wide (many rows) next to M.
constexpr int64_t kPanelElems = int64_t{1} << 20;

// out[m, n] = in[m, :] · w[n, :] for all m < M, n < N. Each thread takes a range of output rows
// and walks it in blocks of kGemvBlockRows weight rows; every block is used for all M inputs (in
// groups of kGemvMaxInputs) while it is still in L1/L2, so the weights stream from memory once.
void gemv(float* out, const float* in, int64_t m_rows, const TensorView& w) {
  const int64_t n = w.dim(0);
  const int64_t k = w.dim(1);
  auto run = [&](int64_t n_begin, int64_t n_end) {
    for (int64_t b0 = n_begin; b0 < n_end; b0 += kGemvBlockRows) {
      const int64_t b1 = std::min(b0 + kGemvBlockRows, n_end);
      for (int64_t m0 = 0; m0 < m_rows; m0 += kGemvMaxInputs) {
        const int n_in = static_cast<int>(std::min<int64_t>(kGemvMaxInputs, m_rows - m0));
        vec_gemv_rows(w.dtype, w.data, k, b0, b1, in + m0 * k, k, n_in, out + m0 * n, n);
      }
    }
  };
  if (n * k * m_rows < kGemvParallelMinMacs) {
    run(0, n);
  } else {
    ThreadPool::global().parallel_for(n, run);
  }
}

// OpenBLAS runs single-threaded; the GEMMs split their output columns over ThreadPool::global()
// instead. Two thread teams on the same cores (OpenBLAS's spinning workers and the pool that runs
// attention, norms and the GEMVs) would otherwise steal time from each other after every call.
void blas_single_threaded() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// out (M, N) columns [n0, n1) = in (M, K) · w[n0:n1, :]ᵀ with fp32 weight rows w_rows.
void sgemm_columns(float* out, const float* in, int64_t m_rows, int64_t n, int64_t k,
                   const float* w_rows, int64_t n0, int64_t n1) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m_rows),
              static_cast<blasint>(n1 - n0), static_cast<blasint>(k), 1.0f, in,
              static_cast<blasint>(k), w_rows, static_cast<blasint>(k), 0.0f, out + n0,
              static_cast<blasint>(n));
}

// fp32 weights: each thread runs one sgemm over its slice of output columns.
void gemm_f32(float* out, const float* in, int64_t m_rows, const TensorView& w) {
  blas_single_threaded();
  const int64_t n = w.dim(0);
  const int64_t k = w.dim(1);
  const float* weight = w.as<const float>();
  ThreadPool::global().parallel_for(n, [&](int64_t n0, int64_t n1) {
    sgemm_columns(out, in, m_rows, n, k, weight + n0 * k, n0, n1);
  });
}

// bf16/f16 weights: each thread walks its slice of output columns in row-panels of the weight,
// converts a panel to fp32 into its own buffer (kPanelElems, only ever grows) and sgemms it.
void gemm_panels(float* out, const float* in, int64_t m_rows, const TensorView& w) {
  blas_single_threaded();
  const int64_t n = w.dim(0);
  const int64_t k = w.dim(1);
  const int64_t panel_rows = std::max<int64_t>(kPanelElems / std::max<int64_t>(k, 1), 16);
  const auto* base = static_cast<const uint8_t*>(w.data);
  ThreadPool::global().parallel_for(n, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> panel;
    const int64_t rows_max = std::min(panel_rows, end - begin);
    if (static_cast<int64_t>(panel.size()) < rows_max * k) {
      panel.resize(static_cast<size_t>(rows_max * k));
    }
    for (int64_t n0 = begin; n0 < end; n0 += panel_rows) {
      const int64_t n1 = std::min(n0 + panel_rows, end);
      vec_to_f32(w.dtype, base + dtype_bytes(w.dtype, n0 * k), panel.data(), (n1 - n0) * k);
      sgemm_columns(out, in, m_rows, n, k, panel.data(), n0, n1);
    }
  });
}

void add_bias(float* out, int64_t m_rows, const TensorView& bias) {
  const int64_t n = bias.numel();
  thread_local std::vector<float> b;
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  vec_to_f32(bias.dtype, bias.data, b.data(), n);
  for (int64_t m = 0; m < m_rows; ++m) {
    float* row = out + m * n;
    for (int64_t i = 0; i < n; ++i) row[i] += b[static_cast<size_t>(i)];
  }
}

}  // namespace

int64_t linear_gemv_max_rows(DType weight_dtype) {
  if (simd_level() == SimdLevel::kScalar) return 4;  // the plain-loop GEMV loses to sgemm early
  return weight_dtype == DType::kF32 ? kLinearGemvMaxRowsF32 : kLinearGemvMaxRowsHalf;
}

Status linear_check_weight(const LinearWeight& w, const std::string& name) {
  if (w.weight.empty() && w.weight.numel() != 0) return invalid_argument(name + ": weight is null");
  if (w.weight.shape.rank != 2) {
    return invalid_argument(name + ": weight must be (out_features, in_features), got " +
                            w.weight.shape.to_string());
  }
  if (!is_weight_dtype(w.weight.dtype)) {
    return unimplemented(name + ": weight dtype " + dtype_name(w.weight.dtype) +
                         " (supported: f32, bf16, f16)");
  }
  if (w.has_bias()) {
    if (w.bias.numel() != w.out_features() || w.bias.shape.rank != 1) {
      return invalid_argument(name + ": bias shape " + w.bias.shape.to_string() +
                              " does not match " + std::to_string(w.out_features()) +
                              " output features");
    }
    if (!is_weight_dtype(w.bias.dtype)) {
      return unimplemented(name + ": bias dtype " + dtype_name(w.bias.dtype) +
                           " (supported: f32, bf16, f16)");
    }
  }
  return ok_status();
}

Status linear(const TensorView& out, const TensorView& in, const LinearWeight& w,
              const LinearOptions& options) {
  VILA_RETURN_IF_ERROR(linear_check_weight(w, "linear"));
  VILA_RETURN_IF_ERROR(check_f32("linear", "in", in));
  VILA_RETURN_IF_ERROR(check_f32("linear", "out", out));
  const int64_t n = w.out_features();
  const int64_t k = w.in_features();
  if (last_dim(in) != k) {
    return invalid_argument("linear: in " + in.shape.to_string() + " does not end in " +
                            std::to_string(k) + " (weight " + w.weight.shape.to_string() + ")");
  }
  const int64_t m = row_count(in);
  if (last_dim(out) != n || row_count(out) != m) {
    return invalid_argument("linear: out " + out.shape.to_string() + ", expected " +
                            std::to_string(m) + " x " + std::to_string(n));
  }
  if (m == 0 || n == 0) return ok_status();

  const float* x = in.as<const float>();
  float* y = out.f32();
  bool use_gemv = m <= linear_gemv_max_rows(w.weight.dtype);
  if (options.algo == LinearAlgo::kGemv) use_gemv = true;
  if (options.algo == LinearAlgo::kGemm) use_gemv = false;
  if (k == 0) {
    std::fill(y, y + m * n, 0.0f);
  } else if (use_gemv) {
    gemv(y, x, m, w.weight);
  } else if (w.weight.dtype == DType::kF32) {
    gemm_f32(y, x, m, w.weight);
  } else {
    gemm_panels(y, x, m, w.weight);
  }
  if (w.has_bias()) add_bias(y, m, w.bias);
  return ok_status();
}

}  // namespace vila::cpu
