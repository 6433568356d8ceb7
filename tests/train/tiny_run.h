// The tiny-preset training run the trainer tests share (tests/train/trainer_test.cpp on the CPU,
// tests/cuda/vlm_train_cuda_test.cpp with device: cuda): its config, and a helper that trains it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/fashion_mnist.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace vila::train::fixture {

inline bool have_fashion() {
  return std::filesystem::exists(std::string(data::kFashionMnistDir) +
                                 "/train-images-idx3-ubyte.gz");
}

// `steps` steps of the tiny preset on Fashion-MNIST captions and comparisons, 2 micro-batches of
// 160 tokens, into `output`.
inline nlohmann::json tiny_run(const std::string& output, int64_t steps) {
  return nlohmann::json{{"model", {{"preset", "tiny"}}},
                        {"tokenizer", {{"vocab_size", 300}}},
                        {"data", {{"fashion", {{"caption", 120}, {"compare", 20}}}, {"seed", 3}}},
                        {"optimizer", {{"lr", 3e-3}, {"weight_decay", 0.1}}},
                        {"steps", steps},
                        {"batch_tokens", 160},
                        {"grad_accum", 2},
                        {"seed", 7},
                        {"checkpoint", {{"keep", 3}}},
                        {"output", output}};
}

// Trains the config `j`; the losses of every step.
inline StatusOr<std::vector<double>> train(const nlohmann::json& j, const TrainerOptions& options) {
  VILA_ASSIGN_OR_RETURN(TrainConfig config, train_config_from_json(j, "test.json"));
  VILA_ASSIGN_OR_RETURN(auto trainer, Trainer::create(config, options, {}));
  VILA_RETURN_IF_ERROR(trainer->run());
  return trainer->losses();
}

}  // namespace vila::train::fixture
