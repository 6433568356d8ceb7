// TrainContext (train_context.h): the Linear forward / backward on cuBLASLt.
#include "train/cuda/train_context.h"

#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_vlm_ops.h"

namespace vila::train {

StatusOr<std::unique_ptr<TrainContext>> make_train_context() {
  auto ctx = std::make_unique<TrainContext>();
  VILA_ASSIGN_OR_RETURN(ctx->stream, cuda::Stream::create());
  VILA_ASSIGN_OR_RETURN(ctx->blas, cuda::Blas::create());
  // Time cuBLASLt's candidates per training GEMM shape (VILA_GEMM_AUTOTUNE=0: the heuristic's
  // first answer).
  ctx->blas->set_autotune(cuda::Blas::autotune_from_env());
  ctx->gemm = std::make_unique<cuda::TrainGemm>(*ctx->blas);
  return ctx;
}

Status TrainContext::linear_forward(void* out, DType out_dtype, const void* in, int64_t rows,
                                    int64_t w_off, int64_t n, int64_t k, int64_t b_off,
                                    bool accumulate, void* gelu_aux, const void* residual) const {
  cuda::DeviceLinearWeight w;
  w.weight = params->value16(w_off);
  w.bias = b_off >= 0 ? params->value(b_off) : nullptr;
  w.bias16 = b_off >= 0 ? params->value16(b_off) : nullptr;
  w.dtype = DType::kBF16;
  w.out_features = n;
  w.in_features = k;
  cuda::LinearArgs a;
  a.out = out;
  a.out_dtype = out_dtype;
  a.in = in;
  a.rows = rows;
  a.accumulate = accumulate;
  a.gelu_tanh = gelu_aux != nullptr;
  a.gelu_aux = gelu_aux;
  a.residual = residual;
  return cuda::linear(*blas, a, w, st());
}

Status TrainContext::linear_backward(void* dx, DType dx_dtype, float beta_dx, const void* dy,
                                     const void* x, int64_t rows, int64_t w_off, int64_t n,
                                     int64_t k, int64_t b_off) const {
  if (float* gw = params->grad(w_off); gw != nullptr) {
    // beta 0 when dW was not written since zero_grads() (no read-back of C), else 1
    VILA_ASSIGN_OR_RETURN(const float beta, params->grad_beta(w_off, n * k));
    cuda::GemmArgs dw;  // dW (n, k) [+]= dyᵀ (n, rows) x (rows, k)
    dw.m = n;
    dw.n = k;
    dw.k = rows;
    dw.a = dy;
    dw.lda = n;
    dw.trans_a = true;
    dw.b = x;
    dw.ldb = k;
    dw.c = gw;
    dw.ldc = k;
    dw.beta = beta;
    VILA_RETURN_IF_ERROR(gemm->gemm(dw, st()));
  }
  if (b_off >= 0) {
    if (float* gb = params->grad(b_off); gb != nullptr) {
      VILA_RETURN_IF_ERROR(params->prepare_grad_add(b_off, n));
      VILA_RETURN_IF_ERROR(cuda::train_column_sum_add(gb, dy, rows, n, st()));
    }
  }
  if (dx == nullptr) return ok_status();
  cuda::GemmArgs di;  // dx (rows, k) = dy (rows, n) W (n, k)
  di.m = rows;
  di.n = k;
  di.k = n;
  di.a = dy;
  di.lda = n;
  di.b = params->value16(w_off);
  di.ldb = k;
  di.c = dx;
  di.ldc = k;
  di.c_dtype = dx_dtype;
  di.beta = beta_dx;
  return gemm->gemm(di, st());
}

}  // namespace vila::train
