// cuBLASLt GEMMs (linear.h): cached plans per shape, the BIAS / GELU / accumulate epilogues, and
// the fp32-bias-with-16-bit-output path: fp32 GEMM into a scratch chunk, then
// bias_epilogue_kernel rounds acc + bias (+ gelu_tanh, + the old output) once to bf16 / f16.
#include <cublasLt.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

#include "backend/cuda/cublaslt_plan.cuh"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/linear.h"

namespace vila::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
// Largest fp32 chunk (rows * N * 4 bytes) of the 16-bit-output bias path.
constexpr size_t kMaxScratchBytes = size_t{64} << 20;
constexpr int kEpilogueThreads = 256;
// gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
constexpr float kGeluTanhBeta = 0.7978845608028654f;
constexpr float kGeluTanhKappa = 0.044715f;

// out (rows, N) of T at out_stride = round(epi(acc (rows, N) fp32 + bias (N) fp32 [+ out])), with
// epi = gelu_tanh or identity. One thread per element, grid-stride.
template <typename T>
__global__ void bias_epilogue_kernel(T* __restrict__ out, int64_t out_stride,
                                     const float* __restrict__ acc, const float* __restrict__ bias,
                                     int64_t rows, int64_t n, bool accumulate, bool gelu_tanh) {
  const int64_t total = rows * n;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n, c = idx - r * n;
    T* dst = out + r * out_stride + c;
    float v = acc[idx] + bias[c];
    if (accumulate) v += to_float(*dst);
    if (gelu_tanh) {
      const float inner = kGeluTanhBeta * (v + kGeluTanhKappa * (v * v * v));
      v = 0.5f * v * (1.0f + tanhf(inner));
    }
    *dst = from_float<T>(v);
  }
}

// Everything that selects a cuBLASLt algorithm. The bias pointer is not part of it: it is set on
// the cached descriptor before each call.
struct PlanKey {
  int64_t rows, n, k, in_stride, out_stride;
  int weight_dtype, out_dtype;
  bool bias, gelu, accumulate;
  bool bias16;    // the bias is of the weight dtype (DeviceLinearWeight::bias16)
  bool gelu_aux;  // the pre-activation is written too (LinearArgs::gelu_aux)
  auto tie() const {
    return std::tie(rows, n, k, in_stride, out_stride, weight_dtype, out_dtype, bias, gelu,
                    accumulate, bias16, gelu_aux);
  }
  bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
};

using Plan = LtPlan;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

// Column-major views of row-major out (M, N) = in (M, K) · W (N, K)ᵀ: A = W as (K, N) ld K with
// op T, B = in as (K, M) ld in_stride, D = out as (N, M) ld out_stride; the bias is per N.
Status build_plan(Blas& blas, const PlanKey& key, Plan& plan) {
  const cudaDataType_t ab_type = cuda_type(static_cast<DType>(key.weight_dtype));
  const cudaDataType_t d_type = cuda_type(static_cast<DType>(key.out_dtype));
  VILA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                                   sizeof(trans_a)));
  VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                                   sizeof(trans_b)));
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (key.gelu_aux) {
    epilogue = key.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  } else if (key.bias) {
    epilogue = key.gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  } else if (key.gelu) {
    epilogue = CUBLASLT_EPILOGUE_GELU;
  }
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                     &epilogue, sizeof(epilogue)));
  }
  if (key.gelu_aux) {  // compact (rows, N): column-major ld N
    const int64_t aux_ld = key.n;
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                     &aux_ld, sizeof(aux_ld)));
  }
  if (key.bias) {
    const cudaDataType_t bias_type = key.bias16 ? ab_type : CUDA_R_32F;
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                     &bias_type, sizeof(bias_type)));
  }
  const auto un = static_cast<uint64_t>(key.n), uk = static_cast<uint64_t>(key.k);
  const auto um = static_cast<uint64_t>(key.rows);
  VILA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, ab_type, uk, un, key.k));
  VILA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, ab_type, uk, um, key.in_stride));
  VILA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, d_type, un, um, key.out_stride));

  return choose_algorithm(blas, plan, nullptr, "linear", key.rows, key.n, key.k);
}

bool is_half(DType t) { return t == DType::kBF16 || t == DType::kF16; }

}  // namespace

struct Blas::PlanCache {
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
};

Blas::Blas() : plans_(std::make_unique<PlanCache>()) {}

bool Blas::autotune_from_env() {
  const char* tune = std::getenv("VILA_GEMM_AUTOTUNE");
  return tune == nullptr || std::string(tune) != "0";
}

StatusOr<std::unique_ptr<Blas>> Blas::create() {
  std::unique_ptr<Blas> blas(new Blas());
  cublasLtHandle_t handle = nullptr;
  VILA_CUBLAS_CHECK(cublasLtCreate(&handle));
  blas->handle_ = handle;
  VILA_CUDA_CHECK(cudaMalloc(&blas->workspace_, kWorkspaceBytes));
  blas->workspace_bytes_ = kWorkspaceBytes;
  return blas;
}

StatusOr<void*> Blas::scratch(size_t bytes) {
  if (bytes <= scratch_bytes_) return scratch_;
  if (scratch_ != nullptr) {
    VILA_CUDA_CHECK(cudaDeviceSynchronize());  // earlier GEMMs on any stream may still use it
    VILA_CUDA_CHECK(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  VILA_CUDA_CHECK(cudaMalloc(&scratch_, bytes));
  scratch_bytes_ = bytes;
  return scratch_;
}

Blas::~Blas() {
  plans_.reset();
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

size_t Blas::cached_plans() const { return plans_->plans.size(); }

Status linear(Blas& blas, const LinearArgs& args, const DeviceLinearWeight& w, void* stream);

namespace {

// The fp32 bias with a 16-bit output: per chunk of rows, GEMM (chunk, N) fp32 into the scratch,
// then bias_epilogue_kernel into out. Arguments are checked by linear().
Status linear_bias_half(Blas& blas, const LinearArgs& args, const DeviceLinearWeight& w,
                        int64_t in_stride, int64_t out_stride, void* stream) {
  const int64_t n = w.out_features, rows = args.rows;
  const size_t row_bytes = static_cast<size_t>(n) * sizeof(float);
  const int64_t chunk =
      std::min<int64_t>(rows, std::max<int64_t>(1, kMaxScratchBytes / row_bytes));  // rows
  VILA_ASSIGN_OR_RETURN(void* scratch_raw, blas.scratch(static_cast<size_t>(chunk) * row_bytes));
  float* scratch = static_cast<float*>(scratch_raw);  // (chunk, N) fp32
  DeviceLinearWeight plain = w;
  plain.bias = nullptr;
  const auto in_elem = static_cast<size_t>(dtype_bytes(w.dtype, 1));
  const auto out_elem = static_cast<size_t>(dtype_bytes(args.out_dtype, 1));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t m = std::min(chunk, rows - r0);
    LinearArgs gemm;
    gemm.out = scratch;
    gemm.in = static_cast<const char*>(args.in) + static_cast<size_t>(r0 * in_stride) * in_elem;
    gemm.in_row_stride = in_stride;
    gemm.rows = m;
    VILA_RETURN_IF_ERROR(linear(blas, gemm, plain, stream));
    void* out = static_cast<char*>(args.out) + static_cast<size_t>(r0 * out_stride) * out_elem;
    const int64_t total = m * n;
    const auto blocks =
        static_cast<unsigned>(std::min<int64_t>(ceil_div(total, kEpilogueThreads), 65535));
    VILA_DISPATCH_HALF(args.out_dtype, "linear", {
      bias_epilogue_kernel<T><<<blocks, kEpilogueThreads, 0, static_cast<cudaStream_t>(stream)>>>(
          static_cast<T*>(out), out_stride, scratch, w.bias, m, n, args.accumulate, args.gelu_tanh);
    });
    VILA_CUDA_CHECK(cudaGetLastError());
  }
  return ok_status();
}

}  // namespace

Status linear(Blas& blas, const LinearArgs& args, const DeviceLinearWeight& w, void* stream) {
  const int64_t n = w.out_features, k = w.in_features, rows = args.rows;
  if (rows < 0 || n <= 0 || k <= 0) {
    return invalid_argument("linear: bad shape rows " + std::to_string(rows) + ", N " +
                            std::to_string(n) + ", K " + std::to_string(k));
  }
  if (w.dtype != DType::kF32 && !is_half(w.dtype)) {
    return unimplemented("linear: weight dtype must be f32, bf16 or f16");
  }
  if (args.out_dtype != DType::kF32 && args.out_dtype != w.dtype) {
    return unimplemented("linear: out dtype must be f32 or the weight dtype");
  }
  if (args.gelu_tanh && args.accumulate) {
    return invalid_argument("linear: gelu_tanh cannot be combined with accumulate");
  }
  if (args.residual != nullptr && (args.accumulate || args.gelu_tanh)) {
    return invalid_argument("linear: residual cannot be combined with accumulate or gelu_tanh");
  }
  if (args.residual != nullptr && args.residual == args.out) {
    return invalid_argument("linear: residual is out itself (use accumulate)");
  }
  const int64_t in_stride = args.in_row_stride == 0 ? k : args.in_row_stride;
  const int64_t out_stride = args.out_row_stride == 0 ? n : args.out_row_stride;
  if (in_stride < k || out_stride < n) {
    return invalid_argument("linear: row stride smaller than the row (in " +
                            std::to_string(in_stride) + " < K " + std::to_string(k) + ", or out " +
                            std::to_string(out_stride) + " < N " + std::to_string(n) + ")");
  }
  if (args.gelu_aux != nullptr && (!args.gelu_tanh || n % 8 != 0)) {
    return invalid_argument("linear: gelu_aux needs gelu_tanh and N (" + std::to_string(n) +
                            ") a multiple of 8");
  }
  if (rows == 0) return ok_status();
  // A 16-bit output takes a bias of its own type in cuBLASLt's epilogue; an fp32-only bias goes
  // through the scratch path.
  const bool bias16 = w.bias != nullptr && args.out_dtype != DType::kF32 && w.bias16 != nullptr;
  if (w.bias != nullptr && args.out_dtype != DType::kF32 && !bias16) {
    if (args.gelu_aux != nullptr || args.residual != nullptr) {
      return unimplemented(
          "linear: gelu_aux / residual with an fp32 bias and a 16-bit output (set bias16)");
    }
    return linear_bias_half(blas, args, w, in_stride, out_stride, stream);
  }

  const bool add_c = args.accumulate || args.residual != nullptr;  // beta 1: C read
  const PlanKey key{rows,
                    n,
                    k,
                    in_stride,
                    out_stride,
                    static_cast<int>(w.dtype),
                    static_cast<int>(args.out_dtype),
                    w.bias != nullptr,
                    args.gelu_tanh,
                    add_c,
                    bias16,
                    args.gelu_aux != nullptr};
  auto& slot = blas.plans().plans[key];
  const bool new_plan = slot == nullptr;
  if (new_plan) {
    auto plan = std::make_unique<Plan>();
    VILA_RETURN_IF_ERROR(build_plan(blas, key, *plan));
    slot = std::move(plan);
  }
  Plan& plan = *slot;
  if (w.bias != nullptr) {
    const void* bias = bias16 ? w.bias16 : w.bias;
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                     &bias, sizeof(bias)));
  }
  if (args.gelu_aux != nullptr) {
    VILA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
        plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &args.gelu_aux, sizeof(args.gelu_aux)));
  }
  // Tuning overwrites D: fine unless D is also the accumulated C (a residual is a separate C).
  if (new_plan && blas.autotune() && !args.accumulate && worth_tuning(rows, n, k)) {
    const LtTuneCall call{w.weight, args.in, args.out, 1.0f, static_cast<cudaStream_t>(stream)};
    VILA_RETURN_IF_ERROR(tune_algorithm(blas, plan, nullptr, call));
  }
  const float alpha = 1.0f;
  const float beta = add_c ? 1.0f : 0.0f;
  const void* c = args.residual != nullptr ? args.residual : args.out;
  VILA_CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(blas.handle()), plan.op, &alpha,
                                   w.weight, plan.a, args.in, plan.b, &beta, c, plan.d, args.out,
                                   plan.d, &plan.algo, blas.workspace(), blas.workspace_bytes(),
                                   static_cast<cudaStream_t>(stream)));
  return ok_status();
}

Status linear(Blas& blas, float* out, const void* in, const DeviceLinearWeight& w, int64_t rows,
              void* stream) {
  LinearArgs args;
  args.out = out;
  args.in = in;
  args.rows = rows;
  return linear(blas, args, w, stream);
}

}  // namespace vila::cuda
