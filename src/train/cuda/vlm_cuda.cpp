// CudaVlmModel (vlm_cuda.h): the parts wired together, the loss, the frozen-module rules.
#include "train/cuda/vlm_cuda.h"

#include <cmath>

#include "backend/cuda/device.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/train_optim.h"
#include "core/dtype.h"
#include "train/cuda/llm_cuda.h"
#include "train/cuda/span_attention.h"
#include "train/cuda/train_context.h"
#include "train/cuda/vision_cuda.h"

namespace vila::train {

struct CudaVlmModel::Impl {
  VlmConfig config;
  std::unique_ptr<TrainContext> ctx;
  CudaVisionTower vision;
  CudaProjector projector;
  CudaLlm llm;
  bool llm_on = true, vision_on = true, projector_on = true;
  std::vector<float> row_loss;

  Status bind(const CudaVlmOptions& options) {
    ctx->deterministic = options.deterministic;
    VILA_RETURN_IF_ERROR(vision.bind(config.vision, *ctx));
    VILA_RETURN_IF_ERROR(projector.bind(config, *ctx));
    return llm.bind(config.llm, *ctx, options.recompute);
  }
  Status forward(const PackedBatch& b);
};

CudaVlmModel::CudaVlmModel() : impl_(std::make_unique<Impl>()) {}
CudaVlmModel::~CudaVlmModel() = default;

namespace {

Status need_gpu() {
  if (cuda::device_count() <= 0) return unimplemented("CUDA training: no CUDA device is visible");
  return ok_status();
}

// The n bf16 logits on the device as host floats.
StatusOr<std::vector<float>> download_logits(const void* logits, int64_t n, void* stream) {
  std::vector<uint16_t> bits(static_cast<size_t>(n));
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_host(bits.data(), logits, bits.size() * sizeof(uint16_t), stream));
  std::vector<float> out(bits.size());
  VILA_RETURN_IF_ERROR(convert_to_f32(DType::kBF16, bits.data(), out.data(), n));
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<CudaVlmModel>> CudaVlmModel::create(const VlmConfig& config,
                                                             const ParamStore& store,
                                                             const CudaVlmOptions& options) {
  VILA_RETURN_IF_ERROR(config.validate());
  VILA_RETURN_IF_ERROR(need_gpu());
  std::unique_ptr<CudaVlmModel> m(new CudaVlmModel());
  Impl& im = *m->impl_;
  im.config = config;
  VILA_ASSIGN_OR_RETURN(im.ctx, make_train_context());
  VILA_ASSIGN_OR_RETURN(im.ctx->params, DeviceParams::from_store(store, im.ctx->st()));
  im.llm_on = store.module_trainable(ParamModule::kLlm);
  im.vision_on = store.module_trainable(ParamModule::kVisionTower);
  im.projector_on = store.module_trainable(ParamModule::kProjector);
  VILA_RETURN_IF_ERROR(im.bind(options));
  return m;
}

StatusOr<std::unique_ptr<CudaVlmModel>> CudaVlmModel::create_random(const VlmConfig& config,
                                                                    uint64_t seed,
                                                                    const CudaVlmOptions& options) {
  VILA_RETURN_IF_ERROR(config.validate());
  VILA_RETURN_IF_ERROR(need_gpu());
  VILA_ASSIGN_OR_RETURN(std::vector<ParamSpec> specs, param_specs(config));
  std::vector<DeviceParamSpec> dspecs;
  dspecs.reserve(specs.size());
  for (const ParamSpec& s : specs) {
    dspecs.push_back(
        {std::string(param_module_dir(s.module)) + "/" + s.name, s.role, s.shape.numel(), true});
  }
  std::unique_ptr<CudaVlmModel> m(new CudaVlmModel());
  Impl& im = *m->impl_;
  im.config = config;
  VILA_ASSIGN_OR_RETURN(im.ctx, make_train_context());
  VILA_ASSIGN_OR_RETURN(im.ctx->params, DeviceParams::create(dspecs, im.ctx->st()));
  VILA_RETURN_IF_ERROR(im.ctx->params->fill_random(seed));
  VILA_RETURN_IF_ERROR(im.bind(options));
  return m;
}

Status CudaVlmModel::Impl::forward(const PackedBatch& b) {
  VILA_RETURN_IF_ERROR(check_packed_batch(config, b));
  const float* feats = nullptr;
  if (b.image_count > 0) {
    VILA_RETURN_IF_ERROR(vision.forward(b.pixels.data(), b.image_count));
    VILA_RETURN_IF_ERROR(projector.forward(vision.features(), b.image_count));
    feats = projector.output();
  }
  const std::vector<Span> spans =
      spans_from_segments(b.segments.empty() ? nullptr : b.segments.data(), b.tokens());
  return llm.forward(b.ids.data(), b.tokens(), spans, feats, b.media_rows.data(),
                     static_cast<int64_t>(b.media_rows.size()));
}

StatusOr<std::vector<float>> CudaVlmModel::forward_logits(const PackedBatch& batch) {
  Impl& im = *impl_;
  VILA_RETURN_IF_ERROR(im.forward(batch));
  return download_logits(im.llm.logits(), batch.tokens() * im.config.llm.vocab, im.ctx->st());
}

StatusOr<StepResult> CudaVlmModel::forward_backward(const PackedBatch& batch,
                                                    const TrainOptions& options) {
  Impl& im = *impl_;
  const int64_t T = batch.tokens();
  const int64_t V = im.config.llm.vocab;
  StepResult result;
  for (int64_t t = 0; t < T; ++t) {
    const int32_t y = batch.targets.size() == static_cast<size_t>(T) ? batch.targets[t] : 0;
    if (y == cuda::kTrainIgnoreIndex) continue;
    if (y < 0 || y >= V) {
      return invalid_argument("PackedBatch: target " + std::to_string(y) + " at position " +
                              std::to_string(t) + " outside [0, " + std::to_string(V) + ")");
    }
    ++result.counted;
  }
  const int64_t n = options.normalizer > 0 ? options.normalizer : result.counted;
  if (n == 0) {
    return invalid_argument("cross_entropy: all " + std::to_string(T) +
                            " labels are ignored (-100): no token to average the loss over");
  }
  VILA_RETURN_IF_ERROR(im.forward(batch));
  TrainContext& ctx = *im.ctx;
  void* st = ctx.st();
  if (options.keep_logits) {
    VILA_ASSIGN_OR_RETURN(result.logits, download_logits(im.llm.logits(), T * V, st));
  }
  VILA_ASSIGN_OR_RETURN(int32_t * targets, ctx.scratch.get<int32_t>("vlm.targets", T));
  void* dlogits = im.llm.logits();  // (T, V) bf16: the gradient replaces the logits in place
  VILA_ASSIGN_OR_RETURN(float* row_loss, ctx.scratch.get<float>("vlm.row_loss", T));
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(targets, batch.targets.data(),
                                            static_cast<size_t>(T) * sizeof(int32_t), st));
  const double inv_n = 1.0 / static_cast<double>(n);
  VILA_RETURN_IF_ERROR(
      cuda::train_cross_entropy(dlogits, row_loss, im.llm.logits(), DType::kBF16, targets, T, V,
                                static_cast<float>(options.grad_scale * inv_n), st));
  im.row_loss.resize(static_cast<size_t>(T));
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_host(im.row_loss.data(), row_loss, im.row_loss.size() * sizeof(float), st));
  double sum = 0.0;
  for (float x : im.row_loss) sum += x;
  result.loss = sum * inv_n;
  if (!std::isfinite(result.loss)) return result;

  const bool need_vision = batch.image_count > 0 && (im.vision_on || im.projector_on);
  if (!im.llm_on && !need_vision) return result;
  const int64_t n_rows = static_cast<int64_t>(batch.media_rows.size());
  float* dfeats = nullptr;
  if (need_vision) {
    VILA_ASSIGN_OR_RETURN(dfeats,
                          ctx.scratch.get<float>("vlm.dfeats", n_rows * im.config.llm.hidden));
  }
  VILA_RETURN_IF_ERROR(im.llm.backward(dlogits, dfeats));
  if (!need_vision) return result;
  float* dvision = nullptr;
  if (im.vision_on) {
    const VisionTowerConfig& v = im.config.vision;
    VILA_ASSIGN_OR_RETURN(
        dvision, ctx.scratch.get<float>("vlm.dvision", batch.image_count * v.patches() * v.hidden));
  }
  VILA_RETURN_IF_ERROR(im.projector.backward(dfeats, dvision));
  if (im.vision_on) VILA_RETURN_IF_ERROR(im.vision.backward(dvision));
  return result;
}

DeviceParams& CudaVlmModel::params() { return *impl_->ctx->params; }
const VlmConfig& CudaVlmModel::config() const { return impl_->config; }
Status CudaVlmModel::synchronize() { return impl_->ctx->stream.synchronize(); }
size_t CudaVlmModel::scratch_bytes() const { return impl_->ctx->scratch.bytes(); }

}  // namespace vila::train
