// CudaLlmTrainer (llm_trainer_cuda.h): CudaLlm + DeviceParams + the cross-entropy kernel.
#include "train/cuda/llm_trainer_cuda.h"

#include "backend/cuda/memory.h"
#include "backend/cuda/train_optim.h"
#include "train/cuda/llm_cuda.h"
#include "train/cuda/span_attention.h"
#include "train/cuda/train_context.h"

namespace vila::train {

namespace {
constexpr const char* kLlmDir = "llm/";
}  // namespace

struct CudaLlmTrainer::Impl {
  LanguageConfig cfg;
  CudaTrainOptions opt;
  std::unique_ptr<TrainContext> ctx;
  CudaLlm llm;
  std::vector<std::string> names;  // llm/ tensor names
  std::vector<float> host_loss;
};

CudaLlmTrainer::CudaLlmTrainer() : impl_(std::make_unique<Impl>()) {}
CudaLlmTrainer::~CudaLlmTrainer() = default;

StatusOr<std::unique_ptr<CudaLlmTrainer>> CudaLlmTrainer::create(const LanguageConfig& config,
                                                                 const CudaTrainOptions& options,
                                                                 const ParamStore* store,
                                                                 uint64_t seed) {
  if (options.batch <= 0 || options.seq <= 0 || options.seq > config.max_position) {
    return invalid_argument("CudaLlmTrainer: bad batch " + std::to_string(options.batch) +
                            " / seq " + std::to_string(options.seq));
  }
  if (config.heads <= 0 || config.kv_heads <= 0 || config.heads % config.kv_heads != 0 ||
      config.hidden % config.heads != 0) {
    return invalid_argument("CudaLlmTrainer: bad heads " + std::to_string(config.heads) + "/" +
                            std::to_string(config.kv_heads));
  }
  std::unique_ptr<CudaLlmTrainer> tr(new CudaLlmTrainer());
  Impl& im = *tr->impl_;
  im.cfg = config;
  im.opt = options;
  VILA_ASSIGN_OR_RETURN(im.ctx, make_train_context());
  VlmConfig vlm;  // only its llm/ parameters are used
  vlm.llm = config;
  VILA_ASSIGN_OR_RETURN(std::vector<ParamSpec> specs, param_specs(vlm));
  std::vector<DeviceParamSpec> dspecs;
  for (const ParamSpec& s : specs) {
    if (s.module != ParamModule::kLlm) continue;
    dspecs.push_back({kLlmDir + s.name, s.role, s.shape.numel(), true});
    im.names.push_back(s.name);
  }
  VILA_ASSIGN_OR_RETURN(im.ctx->params, DeviceParams::create(dspecs, im.ctx->st()));
  DeviceParams& P = *im.ctx->params;
  if (store == nullptr) {
    VILA_RETURN_IF_ERROR(P.fill_random(seed));
  } else {
    ParamStore llm_only;  // the llm/ parameters of `store`, copied
    for (const std::string& name : im.names) {
      const Param* src = const_cast<ParamStore*>(store)->find(ParamModule::kLlm, name);
      if (src == nullptr) return invalid_argument("CudaLlmTrainer: llm/" + name + " missing");
      VILA_ASSIGN_OR_RETURN(Param * dst,
                            llm_only.add(ParamModule::kLlm, name, src->role, src->shape));
      dst->value = src->value;
    }
    VILA_RETURN_IF_ERROR(P.upload_values(llm_only));
  }
  VILA_RETURN_IF_ERROR(im.llm.bind(config, *im.ctx, options.recompute));
  im.host_loss.resize(static_cast<size_t>(options.batch * options.seq));
  VILA_RETURN_IF_ERROR(im.ctx->stream.synchronize());
  return tr;
}

StatusOr<double> CudaLlmTrainer::forward_backward(const int32_t* ids, const int32_t* targets) {
  Impl& im = *impl_;
  const int64_t R = im.opt.batch * im.opt.seq;
  const int64_t V = im.cfg.vocab;
  int64_t counted = 0;
  for (int64_t i = 0; i < R; ++i) {
    if (targets[i] == cuda::kTrainIgnoreIndex) continue;
    if (targets[i] < 0 || targets[i] >= V) {
      return invalid_argument("CudaLlmTrainer: target " + std::to_string(targets[i]) + " at " +
                              std::to_string(i) + " outside the vocabulary");
    }
    ++counted;
  }
  if (counted == 0) return invalid_argument("CudaLlmTrainer: every target is ignored");
  TrainContext& ctx = *im.ctx;
  void* st = ctx.st();
  VILA_RETURN_IF_ERROR(ctx.params->zero_grads());
  VILA_RETURN_IF_ERROR(
      im.llm.forward(ids, R, uniform_spans(im.opt.batch, im.opt.seq), nullptr, nullptr, 0));
  VILA_ASSIGN_OR_RETURN(int32_t * tgt, ctx.scratch.get<int32_t>("trainer.targets", R));
  void* dlogits = im.llm.logits();  // (R, V) bf16: the gradient replaces the logits in place
  VILA_ASSIGN_OR_RETURN(float* row_loss, ctx.scratch.get<float>("trainer.row_loss", R));
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(tgt, targets, static_cast<size_t>(R) * sizeof(int32_t), st));
  VILA_RETURN_IF_ERROR(cuda::train_cross_entropy(dlogits, row_loss, im.llm.logits(), DType::kBF16,
                                                 tgt, R, V, 1.0f / static_cast<float>(counted),
                                                 st));
  VILA_RETURN_IF_ERROR(im.llm.backward(dlogits, nullptr));
  VILA_RETURN_IF_ERROR(cuda::copy_to_host(im.host_loss.data(), row_loss,
                                          static_cast<size_t>(R) * sizeof(float), st));
  double sum = 0.0;
  for (float x : im.host_loss) sum += x;
  return sum / static_cast<double>(counted);
}

Status CudaLlmTrainer::optimizer_step(double lr) {
  Impl& im = *impl_;
  AdamWConfig c;
  c.beta1 = im.opt.beta1;
  c.beta2 = im.opt.beta2;
  c.eps = im.opt.eps;
  c.weight_decay = im.opt.weight_decay;
  return im.ctx->params->adamw_step(c, lr, im.opt.max_grad_norm);
}

Status CudaLlmTrainer::synchronize() { return impl_->ctx->stream.synchronize(); }

StatusOr<std::vector<float>> CudaLlmTrainer::value(const std::string& name) {
  return impl_->ctx->params->download_value(kLlmDir + name);
}
StatusOr<std::vector<float>> CudaLlmTrainer::grad(const std::string& name) {
  return impl_->ctx->params->download_grad(kLlmDir + name);
}
std::vector<std::string> CudaLlmTrainer::names() const { return impl_->names; }
int64_t CudaLlmTrainer::parameter_count() const { return impl_->ctx->params->count(); }
int64_t CudaLlmTrainer::embedding_parameters() const {
  const int64_t table = impl_->cfg.vocab * impl_->cfg.hidden;
  return impl_->cfg.tie_word_embeddings ? table : 2 * table;
}
void* CudaLlmTrainer::stream() const { return impl_->ctx->st(); }

}  // namespace vila::train
