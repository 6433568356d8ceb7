// Training GEMM: pack (round / transpose) the operands, multiply with cpu::linear, round the
// result to the accumulator format, then store or accumulate.
#include "train/gemm.h"

#include <algorithm>
#include <string>
#include <vector>

#include "ops/cpu/matmul.h"
#include "ops/cpu/op_check.h"

namespace vila::train {

namespace {

// Tile side of the blocked transpose (a 32 x 32 fp32 tile is 4 KiB: both sides stay in L1).
constexpr int64_t kTransposeTile = 32;

// dst (rows, k) = src stored as (k, rows), blocked so that both sides are read in cache lines.
void transpose_into(const float* src, int64_t rows, int64_t k, float* dst) {
  for (int64_t k0 = 0; k0 < k; k0 += kTransposeTile) {
    const int64_t k1 = std::min(k0 + kTransposeTile, k);
    for (int64_t r0 = 0; r0 < rows; r0 += kTransposeTile) {
      const int64_t r1 = std::min(r0 + kTransposeTile, rows);
      for (int64_t kk = k0; kk < k1; ++kk) {
        for (int64_t r = r0; r < r1; ++r) dst[r * k + kk] = src[kk * rows + r];
      }
    }
  }
}

// The operand as (rows, k) fp32 with its format applied: the caller's memory when nothing is to
// be done, else `scratch`.
StatusOr<const float*> pack_operand(const TensorView& t, Layout layout, int64_t rows, int64_t k,
                                    const OperandFormat& format, std::vector<float>& scratch) {
  const bool transposed = layout == Layout::kTransposed;
  if (!transposed && format.dtype == DType::kF32) return t.as<const float>();
  scratch.resize(static_cast<size_t>(rows * k));
  if (transposed) {
    transpose_into(t.as<const float>(), rows, k, scratch.data());
  } else {
    std::copy(t.as<const float>(), t.as<const float>() + rows * k, scratch.data());
  }
  VILA_RETURN_IF_ERROR(quantize_operand(scratch.data(), rows, k, format));
  return static_cast<const float*>(scratch.data());
}

Status check_rank2(const char* name, const TensorView& t) {
  VILA_RETURN_IF_ERROR(cpu::check_f32("gemm", name, t));
  if (t.shape.rank != 2) {
    return invalid_argument(std::string("gemm: ") + name + " must be rank 2, got " +
                            t.shape.to_string());
  }
  return ok_status();
}

}  // namespace

Status gemm(const TensorView& out, const TensorView& a, const TensorView& b,
            const GemmPrecision& precision, const GemmOptions& opts, const TensorView& bias) {
  VILA_RETURN_IF_ERROR(check_rank2("a", a));
  VILA_RETURN_IF_ERROR(check_rank2("b", b));
  VILA_RETURN_IF_ERROR(check_rank2("out", out));
  VILA_RETURN_IF_ERROR(check_gemm_precision(precision, "gemm"));
  const bool a_t = opts.a_layout == Layout::kTransposed;
  const bool b_t = opts.b_layout == Layout::kTransposed;
  const int64_t m = a_t ? a.dim(1) : a.dim(0);
  const int64_t k = a_t ? a.dim(0) : a.dim(1);
  const int64_t n = b_t ? b.dim(1) : b.dim(0);
  const int64_t kb = b_t ? b.dim(0) : b.dim(1);
  if (k != kb || out.dim(0) != m || out.dim(1) != n) {
    return invalid_argument("gemm: A " + a.shape.to_string() + (a_t ? "^T" : "") + ", B " +
                            b.shape.to_string() + (b_t ? "^T" : "") + " and out " +
                            out.shape.to_string() + " do not form (M, K) x (N, K)^T = (M, N)");
  }
  if (!bias.empty()) {
    VILA_RETURN_IF_ERROR(cpu::check_f32("gemm", "bias", bias));
    if (bias.numel() != n) {
      return invalid_argument("gemm: bias " + bias.shape.to_string() + ", expected (" +
                              std::to_string(n) + ")");
    }
  }
  if (m == 0 || n == 0) return ok_status();

  std::vector<float> result_scratch;
  const bool direct = !opts.accumulate;  // write the product straight into out
  float* result = out.f32();
  if (!direct) {
    result_scratch.resize(static_cast<size_t>(m * n));
    result = result_scratch.data();
  }
  if (k == 0) {  // empty contraction: the product is zero
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < n; ++c) result[r * n + c] = bias.empty() ? 0.0f : bias.f32()[c];
    }
  } else {
    std::vector<float> a_scratch, b_scratch;
    VILA_ASSIGN_OR_RETURN(const float* a_packed,
                          pack_operand(a, opts.a_layout, m, k, precision.a, a_scratch));
    VILA_ASSIGN_OR_RETURN(const float* b_packed,
                          pack_operand(b, opts.b_layout, n, k, precision.b, b_scratch));
    cpu::LinearWeight w;
    w.weight = TensorView(const_cast<float*>(b_packed), DType::kF32, {n, k});
    w.bias = bias;
    VILA_RETURN_IF_ERROR(cpu::linear(f32_view(result, {m, n}),
                                     TensorView(const_cast<float*>(a_packed), DType::kF32, {m, k}),
                                     w));
  }
  VILA_RETURN_IF_ERROR(round_to_accum(result, m * n, precision.accum));
  if (!direct) {
    float* dst = out.f32();
    for (int64_t i = 0; i < m * n; ++i) dst[i] += result[i];
  }
  return ok_status();
}

}  // namespace vila::train
