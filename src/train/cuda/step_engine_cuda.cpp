// The GPU StepEngine (step_engine_cuda.h).
#include "train/cuda/step_engine_cuda.h"

#include <cmath>

#include "train/cuda/vlm_cuda.h"

namespace vila::train {

namespace {

class CudaStepEngine : public StepEngine {
 public:
  CudaStepEngine(std::unique_ptr<CudaVlmModel> model, ParamStore& store, AdamW& optimizer)
      : model_(std::move(model)), store_(store), optimizer_(optimizer) {}

  StatusOr<StepResult> forward_backward(const PackedBatch& batch,
                                        const TrainOptions& options) override {
    return model_->forward_backward(batch, options);
  }
  Status zero_grads() override { return model_->params().zero_grads(); }
  StatusOr<GradClipResult> clip(double max_norm) override {
    GradClipResult r;
    VILA_ASSIGN_OR_RETURN(r.norm, model_->params().grad_norm());
    r.finite = std::isfinite(r.norm);
    max_norm_ = max_norm;  // applied inside the AdamW kernel
    if (max_norm > 0 && r.finite) {
      const double scale = max_norm / (r.norm + 1e-6);
      r.clipped = scale < 1.0;
      r.scale = r.clipped ? static_cast<float>(scale) : 1.0f;
    }
    return r;
  }
  Status step(double lr) override {
    return model_->params().adamw_step(optimizer_.config(), lr, max_norm_);
  }
  Status to_host() override {
    VILA_RETURN_IF_ERROR(model_->params().download_values(store_));
    return model_->params().download_state(optimizer_, store_);
  }
  Status from_host() override {
    VILA_RETURN_IF_ERROR(model_->params().upload_values(store_));
    return model_->params().upload_state(optimizer_, store_);
  }
  bool host_gradients() const override { return false; }

 private:
  std::unique_ptr<CudaVlmModel> model_;
  ParamStore& store_;
  AdamW& optimizer_;
  double max_norm_ = 0.0;
};

}  // namespace

StatusOr<std::unique_ptr<StepEngine>> make_cuda_step_engine(const VlmConfig& config,
                                                            ParamStore& store, AdamW& optimizer,
                                                            bool deterministic) {
  if (optimizer.config().exp_avg_format != StateFormat::kF32 ||
      optimizer.config().exp_avg_sq_format != StateFormat::kF32) {
    return unimplemented("device: cuda keeps the AdamW moments in f32 (state_format: f32)");
  }
  CudaVlmOptions options;
  options.deterministic = deterministic;
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<CudaVlmModel> model,
                        CudaVlmModel::create(config, store, options));
  return std::unique_ptr<StepEngine>(
      std::make_unique<CudaStepEngine>(std::move(model), store, optimizer));
}

}  // namespace vila::train
