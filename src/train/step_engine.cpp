// StepEngine (step_engine.h): the CPU engine, and the factory.
#include "train/step_engine.h"

#include <cmath>

#ifdef VILA_WITH_CUDA
#include "train/cuda/step_engine_cuda.h"
#endif

namespace vila::train {

namespace {

class CpuStepEngine : public StepEngine {
 public:
  CpuStepEngine(VlmModel& model, ParamStore& store, AdamW& optimizer)
      : model_(model), store_(store), optimizer_(optimizer) {}

  StatusOr<StepResult> forward_backward(const PackedBatch& batch,
                                        const TrainOptions& options) override {
    return model_.forward_backward(batch, options);
  }
  Status zero_grads() override {
    store_.zero_grads();
    return ok_status();
  }
  StatusOr<GradClipResult> clip(double max_norm) override {
    if (max_norm > 0) return clip_grad_norm(store_, max_norm);
    GradClipResult r;
    r.norm = global_grad_norm(store_);
    r.finite = std::isfinite(r.norm);
    return r;
  }
  Status step(double lr) override { return optimizer_.step(store_, lr); }
  Status to_host() override { return ok_status(); }
  Status from_host() override { return ok_status(); }
  bool host_gradients() const override { return true; }

 private:
  VlmModel& model_;
  ParamStore& store_;
  AdamW& optimizer_;
};

}  // namespace

StatusOr<std::unique_ptr<StepEngine>> make_step_engine(const std::string& device, VlmModel& model,
                                                       ParamStore& store, AdamW& optimizer,
                                                       bool deterministic) {
  if (device == "cpu") {
    return std::unique_ptr<StepEngine>(std::make_unique<CpuStepEngine>(model, store, optimizer));
  }
  if (device == "cuda") {
#ifdef VILA_WITH_CUDA
    return make_cuda_step_engine(model.config(), store, optimizer, deterministic);
#else
    (void)deterministic;
    return unimplemented("device: cuda: this build has no CUDA (configure with the cuda preset)");
#endif
  }
  return invalid_argument("device: '" + device + "' is not cpu or cuda");
}

}  // namespace vila::train
