// VlmModel: create, init, batch checks, forward and forward_backward (see vlm.h).
#include "train/model/vlm.h"

#include <cmath>
#include <random>
#include <string>

#include "train/cross_entropy.h"

namespace vila::train {

namespace {

// 64-bit FNV-1a of a parameter's full name, mixed into its init seed.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

StatusOr<std::unique_ptr<VlmModel>> VlmModel::create(const VlmConfig& config, ParamStore& store) {
  VILA_RETURN_IF_ERROR(config.validate());
  VILA_RETURN_IF_ERROR(register_params(config, store));
  std::unique_ptr<VlmModel> m(new VlmModel());
  m->config_ = config;
  m->store_ = &store;
  VILA_RETURN_IF_ERROR(m->vision_.bind(config.vision, store));
  VILA_RETURN_IF_ERROR(m->projector_.bind(config, store));
  VILA_RETURN_IF_ERROR(m->llm_.bind(config.llm, store));
  return m;
}

void VlmModel::init(uint64_t seed, float std) {
  for (Param* p : store_->all()) {
    const bool shift = ends_with(p->name, ".bias");
    switch (p->role) {
      case ParamRole::kWeight:
      case ParamRole::kEmbedding: {
        std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                          static_cast<uint32_t>(name_hash(p->full_name())),
                          static_cast<uint32_t>(name_hash(p->full_name()) >> 32)};
        std::mt19937_64 rng(seq);
        std::normal_distribution<float> dist(0.0f, std);
        for (float& v : p->value) v = dist(rng);
        break;
      }
      case ParamRole::kBias:
        std::fill(p->value.begin(), p->value.end(), 0.0f);
        break;
      case ParamRole::kNorm:
        std::fill(p->value.begin(), p->value.end(), shift ? 0.0f : 1.0f);
        break;
    }
  }
  store_->zero_grads();
}

Status check_packed_batch(const VlmConfig& config, const PackedBatch& b) {
  const int64_t T = b.tokens();
  auto bad = [](const std::string& what) { return invalid_argument("PackedBatch: " + what); };
  if (T <= 0) return bad("no tokens");
  if (static_cast<int64_t>(b.targets.size()) != T) {
    return bad("targets has " + std::to_string(b.targets.size()) + " entries, ids " +
               std::to_string(T));
  }
  if (!b.segments.empty() && static_cast<int64_t>(b.segments.size()) != T) {
    return bad("segments has " + std::to_string(b.segments.size()) + " entries, ids " +
               std::to_string(T));
  }
  if (b.image_count < 0) return bad("image_count is negative");
  if (b.image_count == 0) {
    if (!b.media_rows.empty()) return bad("media_rows given without images");
    return ok_status();
  }
  const VisionTowerConfig& v = config.vision;
  if (b.image_size != v.image_size) {
    return bad("image_size " + std::to_string(b.image_size) + " differs from the model's " +
               std::to_string(v.image_size));
  }
  const int64_t px = b.image_count * v.channels * v.image_size * v.image_size;
  if (static_cast<int64_t>(b.pixels.size()) != px) {
    return bad("pixels has " + std::to_string(b.pixels.size()) + " values, expected " +
               std::to_string(px));
  }
  if (b.tokens_per_image != config.tokens_per_image()) {
    return bad("tokens_per_image " + std::to_string(b.tokens_per_image) +
               " differs from the model's " + std::to_string(config.tokens_per_image()));
  }
  if (static_cast<int64_t>(b.media_rows.size()) != b.image_count * b.tokens_per_image) {
    return bad("media_rows has " + std::to_string(b.media_rows.size()) + " entries, expected " +
               std::to_string(b.image_count * b.tokens_per_image));
  }
  return ok_status();
}

Status VlmModel::forward(const PackedBatch& b, const LinearPrecision& precision) {
  VILA_RETURN_IF_ERROR(check_packed_batch(config_, b));
  const float* feats = nullptr;
  if (b.image_count > 0) {
    VILA_RETURN_IF_ERROR(vision_.forward(b.pixels.data(), b.image_count, precision));
    VILA_RETURN_IF_ERROR(projector_.forward(vision_.features().data(), b.image_count, precision));
    feats = projector_.output().data();
  }
  return llm_.forward(b.ids.data(), b.segments.empty() ? nullptr : b.segments.data(), b.tokens(),
                      feats, b.media_rows.data(), static_cast<int64_t>(b.media_rows.size()),
                      precision);
}

StatusOr<std::vector<float>> VlmModel::forward_logits(const PackedBatch& batch,
                                                      const TrainOptions& options) {
  VILA_RETURN_IF_ERROR(forward(batch, options.precision));
  return llm_.logits();
}

StatusOr<StepResult> VlmModel::forward_backward(const PackedBatch& batch,
                                                const TrainOptions& options) {
  VILA_RETURN_IF_ERROR(forward(batch, options.precision));
  StepResult result;
  std::vector<float>& logits = llm_.logits();  // (T, V), becomes dlogits in place
  if (options.keep_logits) result.logits = logits;
  const int64_t T = batch.tokens(), V = config_.llm.vocab;
  const TensorView lv = f32_view(logits.data(), {T, V});
  CrossEntropyOptions ce;
  ce.normalizer = options.normalizer;
  ce.grad_scale = options.grad_scale;
  VILA_ASSIGN_OR_RETURN(CrossEntropyResult r, cross_entropy(lv, lv, batch.targets.data(), ce));
  result.loss = r.loss;
  result.counted = r.counted;
  if (!std::isfinite(r.loss)) return result;

  const bool llm_on = store_->module_trainable(ParamModule::kLlm);
  const bool vision_on = store_->module_trainable(ParamModule::kVisionTower);
  const bool projector_on = store_->module_trainable(ParamModule::kProjector);
  const bool need_vision = batch.image_count > 0 && (vision_on || projector_on);
  if (!llm_on && !need_vision) return result;
  const int64_t n_rows = static_cast<int64_t>(batch.media_rows.size());
  dfeats_.resize(static_cast<size_t>(n_rows * config_.llm.hidden));
  VILA_RETURN_IF_ERROR(
      llm_.backward(logits.data(), need_vision ? dfeats_.data() : nullptr, options.precision));
  if (!need_vision) return result;
  const VisionTowerConfig& v = config_.vision;
  dvision_.resize(static_cast<size_t>(batch.image_count * v.patches() * v.hidden));
  VILA_RETURN_IF_ERROR(projector_.backward(dfeats_.data(), vision_on ? dvision_.data() : nullptr,
                                           options.precision));
  if (vision_on) VILA_RETURN_IF_ERROR(vision_.backward(dvision_.data(), options.precision));
  return result;
}

}  // namespace vila::train
