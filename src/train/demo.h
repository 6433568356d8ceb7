// `vila demo`: the README's main job. A tiny VLM (train/model/vlm_config.h "fashion" preset:
// SigLIP-style tower on 28 x 28 images, 2x2 projector, 2-layer Qwen2) trained from scratch on
// Fashion-MNIST captions and questions from the Debian package, with its own BPE tokenizer, then
// asked "What is this?" about held-out images through the inference path.
#pragma once

#include <string>

#include "train/train_config.h"

namespace vila::train {

struct DemoOptions {
  std::string output = "runs/demo";
  double minutes = 5.0;  // training budget
  std::string device = "cpu";
  int64_t eval_samples = 500;
  uint64_t seed = 0;
};

// The TrainConfig the demo runs (source "demo").
TrainConfig demo_config(const DemoOptions& options);

}  // namespace vila::train
