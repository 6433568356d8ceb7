#include <cublasLt.h>

#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/linear.h"

#define VILA_CUBLAS_CHECK(expr)                                                               \
  do {                                                                                        \
    const cublasStatus_t vila_cublas_status_ = (expr);                                        \
    if (vila_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                       \
      return ::vila::Status{::vila::StatusCode::kInternal,                                    \
                            std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + \
                                #expr + ": " + cublasLtGetStatusString(vila_cublas_status_)}; \
    }                                                                                         \
  } while (0)

namespace vila::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// Owns the cuBLASLt descriptors of one call.
struct LtDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescriptors() {
    if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Blas>> Blas::create() {
  std::unique_ptr<Blas> blas(new Blas());
  cublasLtHandle_t handle = nullptr;
  VILA_CUBLAS_CHECK(cublasLtCreate(&handle));
  blas->handle_ = handle;
  VILA_CUDA_CHECK(cudaMalloc(&blas->workspace_, kWorkspaceBytes));
  blas->workspace_bytes_ = kWorkspaceBytes;
  return blas;
}

Blas::~Blas() {
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

Status linear(Blas& blas, float* out, const void* in, const DeviceLinearWeight& w, int64_t rows,
              void* stream) {
  const int64_t n = w.out_features, k = w.in_features;
  if (rows < 0 || n <= 0 || k <= 0) {
    return {StatusCode::kInvalidArgument, "linear: bad shape rows " + std::to_string(rows) +
                                              ", N " + std::to_string(n) + ", K " +
                                              std::to_string(k)};
  }
  if (w.dtype != DType::kF32 && w.dtype != DType::kBF16) {
    return {StatusCode::kUnimplemented, "linear: weight dtype must be f32 or bf16"};
  }
  if (rows == 0) return {};
  const cudaDataType_t ab_type = w.dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;

  LtDescriptors desc;
  VILA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                                   sizeof(trans_a)));
  VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                                   sizeof(trans_b)));
  if (w.bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                     &epilogue, sizeof(epilogue)));
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        desc.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                     &w.bias, sizeof(w.bias)));
  }
  // Column-major views: A = W as (K, N) ld K (op T -> (N, K)), B = in as (K, M) ld K,
  // D = out as (N, M) ld N.
  const auto un = static_cast<uint64_t>(n), uk = static_cast<uint64_t>(k);
  const auto um = static_cast<uint64_t>(rows);
  VILA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc.a, ab_type, uk, un, static_cast<int64_t>(k)));
  VILA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc.b, ab_type, uk, um, static_cast<int64_t>(k)));
  VILA_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&desc.d, CUDA_R_32F, un, um, static_cast<int64_t>(n)));

  VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&desc.pref));
  const size_t ws = blas.workspace_bytes();
  VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      desc.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const auto handle = static_cast<cublasLtHandle_t>(blas.handle());
  VILA_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, desc.op, desc.a, desc.b, desc.d, desc.d,
                                                   desc.pref, 1, &heuristic, &found));
  if (found == 0) {
    return {StatusCode::kUnimplemented, "linear: cuBLASLt has no algorithm for M " +
                                            std::to_string(rows) + ", N " + std::to_string(n) +
                                            ", K " + std::to_string(k)};
  }
  const float alpha = 1.0f, beta = 0.0f;
  VILA_CUBLAS_CHECK(cublasLtMatmul(handle, desc.op, &alpha, w.weight, desc.a, in, desc.b, &beta,
                                   out, desc.d, out, desc.d, &heuristic.algo, blas.workspace(), ws,
                                   static_cast<cudaStream_t>(stream)));
  return {};
}

}  // namespace vila::cuda
