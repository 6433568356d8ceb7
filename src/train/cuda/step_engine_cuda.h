// The GPU StepEngine (train/step_engine.h): CudaVlmModel + DeviceParams' AdamW.
// Optimizer state on the device is fp32 (state_format f32 only: Unimplemented otherwise); one
// AdamW step count for every trainable parameter.
#pragma once

#include <memory>

#include "core/status.h"
#include "train/model/vlm_config.h"
#include "train/optimizer.h"
#include "train/params.h"
#include "train/step_engine.h"

namespace vila::train {

// deterministic: CudaVlmOptions::deterministic.
StatusOr<std::unique_ptr<StepEngine>> make_cuda_step_engine(const VlmConfig& config,
                                                            ParamStore& store, AdamW& optimizer,
                                                            bool deterministic = false);

}  // namespace vila::train
