// TrainGemm (train_gemm.h): the row-major general GEMM on cuBLASLt, plans cached per shape.
#include <cublasLt.h>

#include <map>
#include <string>
#include <tuple>

#include "backend/cuda/cublaslt_plan.cuh"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/train_gemm.h"

namespace vila::cuda {

namespace {

constexpr uint32_t kMaxAlignment = 256;  // bytes: cuBLASLt's default assumption

// The largest power of two <= 256 dividing the operand's address, row stride and batch stride
// (bytes): what the plan may assume (attention's per-head operands start at h·D elements, which
// for small head dims is less aligned than cuBLASLt's default of 256 bytes).
uint32_t alignment_of(const void* ptr, int64_t ld, int64_t stride, int64_t elem_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(ptr) | static_cast<uint64_t>(ld * elem_bytes) |
                  static_cast<uint64_t>(stride * elem_bytes) | kMaxAlignment;
  return static_cast<uint32_t>(bits & (~bits + 1));  // lowest set bit
}

struct Key {
  int64_t m, n, k, lda, ldb, ldc, sa, sb, sc;
  int batch, c_dtype;
  bool ta, tb, beta_nonzero;
  uint32_t align_a, align_b, align_c;  // bytes
  auto tie() const {
    return std::tie(m, n, k, lda, ldb, ldc, sa, sb, sc, batch, c_dtype, ta, tb, beta_nonzero,
                    align_a, align_b, align_c);
  }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

using Plan = LtPlan;

// cuBLASLt's A is our B and its B our A.
LtAlignment lt_alignment(const Key& key) { return {key.align_b, key.align_a, key.align_c}; }

Status make_layout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows, int64_t cols,
                   int64_t ld, int batch, int64_t stride) {
  VILA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(layout, type, static_cast<uint64_t>(rows),
                                               static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    VILA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                       &batch, sizeof(batch)));
    VILA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        *layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return ok_status();
}

// Column-major: cuBLASLt A := our B's memory, stored (cols, rows) = trans_b ? (K, N) : (N, K),
// op trans_b; cuBLASLt B := our A's memory, stored trans_a ? (M, K) : (K, M), op trans_a;
// D := C as (N, M) at ldc.
Status build(Blas& blas, const Key& key, Plan& plan) {
  const cudaDataType_t c_type =
      key.c_dtype == static_cast<int>(DType::kBF16) ? CUDA_R_16BF : CUDA_R_32F;
  VILA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  VILA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  VILA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  const int64_t a_rows = key.tb ? key.k : key.n, a_cols = key.tb ? key.n : key.k;
  const int64_t b_rows = key.ta ? key.m : key.k, b_cols = key.ta ? key.k : key.m;
  VILA_RETURN_IF_ERROR(
      make_layout(&plan.a, CUDA_R_16BF, a_rows, a_cols, key.ldb, key.batch, key.sb));
  VILA_RETURN_IF_ERROR(
      make_layout(&plan.b, CUDA_R_16BF, b_rows, b_cols, key.lda, key.batch, key.sa));
  VILA_RETURN_IF_ERROR(make_layout(&plan.d, c_type, key.n, key.m, key.ldc, key.batch, key.sc));
  const LtAlignment alignment = lt_alignment(key);
  return choose_algorithm(blas, plan, &alignment, "train gemm", key.m, key.n, key.k);
}

}  // namespace

struct TrainGemm::Cache {
  std::map<Key, std::unique_ptr<Plan>> plans;
};

TrainGemm::TrainGemm(Blas& blas) : blas_(blas), cache_(std::make_unique<Cache>()) {}
TrainGemm::~TrainGemm() = default;

Status TrainGemm::gemm(const GemmArgs& g, void* stream) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0 || g.batch <= 0) {
    return invalid_argument("train gemm: bad shape M " + std::to_string(g.m) + ", N " +
                            std::to_string(g.n) + ", K " + std::to_string(g.k) + ", batch " +
                            std::to_string(g.batch));
  }
  if (g.c_dtype != DType::kF32 && g.c_dtype != DType::kBF16) {
    return unimplemented("train gemm: C dtype must be f32 or bf16");
  }
  const int64_t a_cols = g.trans_a ? g.m : g.k, b_cols = g.trans_b ? g.k : g.n;
  if (g.lda < a_cols || g.ldb < b_cols || g.ldc < g.n) {
    return invalid_argument("train gemm: leading dimension smaller than a row (lda " +
                            std::to_string(g.lda) + ", ldb " + std::to_string(g.ldb) + ", ldc " +
                            std::to_string(g.ldc) + ")");
  }
  if (g.a == nullptr || g.b == nullptr || g.c == nullptr) {
    return invalid_argument("train gemm: null operand");
  }
  const Key key{g.m,
                g.n,
                g.k,
                g.lda,
                g.ldb,
                g.ldc,
                g.stride_a,
                g.stride_b,
                g.stride_c,
                g.batch,
                static_cast<int>(g.c_dtype),
                g.trans_a,
                g.trans_b,
                g.beta != 0.0f,
                alignment_of(g.a, g.lda, g.stride_a, 2),
                alignment_of(g.b, g.ldb, g.stride_b, 2),
                alignment_of(g.c, g.ldc, g.stride_c, g.c_dtype == DType::kF32 ? 4 : 2)};
  auto& slot = cache_->plans[key];
  if (slot == nullptr) {
    auto plan = std::make_unique<Plan>();
    VILA_RETURN_IF_ERROR(build(blas_, key, *plan));
    if (blas_.autotune() && g.beta == 0.0f && worth_tuning(g.m * g.batch, g.n, g.k)) {
      const LtAlignment alignment = lt_alignment(key);
      const LtTuneCall call{g.b, g.a, g.c, g.alpha, static_cast<cudaStream_t>(stream)};
      VILA_RETURN_IF_ERROR(tune_algorithm(blas_, *plan, &alignment, call));
    }
    slot = std::move(plan);
  }
  Plan& plan = *slot;
  VILA_CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(blas_.handle()), plan.op, &g.alpha,
                                   g.b, plan.a, g.a, plan.b, &g.beta, g.c, plan.d, g.c, plan.d,
                                   &plan.algo, blas_.workspace(), blas_.workspace_bytes(),
                                   static_cast<cudaStream_t>(stream)));
  return ok_status();
}

}  // namespace vila::cuda
