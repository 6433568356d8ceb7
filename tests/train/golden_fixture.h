// The PyTorch golden training fixture (tests/fixtures/train/golden, scripts/make_golden_train.py),
// shared by the CPU test (tests/train/golden_train_test.cpp) and the CUDA one
// (tests/cuda/vlm_train_cuda_test.cpp): the reference JSON, the model in the released layout and
// the packed batch.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "format/safetensors.h"
#include "train/batch.h"
#include "train/model/released_io.h"
#include "train/model/vlm_config.h"
#include "train/params.h"

namespace vila::train::fixture {

inline const std::string kGoldenDir = std::string(VILA_FIXTURES_DIR) + "/train/golden";

template <typename T>
std::vector<T> read_vec(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsEntry& e = f.entries().at(name);
  const T* p = reinterpret_cast<const T*>(e.data);
  return std::vector<T>(p, p + e.shape.numel());
}

struct GoldenFixture {
  nlohmann::json ref;  // reference.json: loss, adamw_losses, lr, betas, ... parameter names
  VlmConfig config;
  PackedBatch batch;
};

// Loads reference.json, the model into `store` (every parameter registered) and the batch.
inline Status load_golden(ParamStore& store, GoldenFixture* out) {
  std::ifstream in(kGoldenDir + "/reference.json");
  if (!in) return not_found(kGoldenDir + "/reference.json: cannot open");
  out->ref = nlohmann::json::parse(in);
  VILA_RETURN_IF_ERROR(load_released(kGoldenDir, store, &out->config));
  VILA_RETURN_IF_ERROR(register_params(out->config, store));
  VILA_ASSIGN_OR_RETURN(auto bf, SafetensorsFile::open(kGoldenDir + "/batch.safetensors"));
  PackedBatch& b = out->batch;
  b.ids = read_vec<int32_t>(*bf, "ids");
  b.targets = read_vec<int32_t>(*bf, "targets");
  b.segments = read_vec<int32_t>(*bf, "segments");
  for (int32_t r : read_vec<int32_t>(*bf, "media_rows")) b.media_rows.push_back(r);
  b.pixels = read_vec<float>(*bf, "pixels");
  b.image_size = out->ref["image_size"].get<int64_t>();
  b.tokens_per_image = out->ref["tokens_per_image"].get<int64_t>();
  b.image_count = static_cast<int64_t>(b.media_rows.size()) / b.tokens_per_image;
  b.samples = b.segments.back() + 1;
  return ok_status();
}

}  // namespace vila::train::fixture
