#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/mapped_file.h"
#include "format/safetensors.h"
#include "model/vila_model.h"
#include "train/metrics.h"
#include "train/model/released_io.h"
#include "train/model/vlm.h"
#include "train/optimizer.h"
#include "train/run_dir.h"
#include "train/schedule.h"
#include "train/step_engine.h"
#include "train/train_data.h"

namespace vila::train {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kMetricsFile = "metrics.jsonl";
constexpr const char* kTokenizerDir = "tokenizer";
constexpr int kMaxSkipsInARow = 10;
// A time-limited run plans its steps from a timed trial step and keeps this share of the budget
// for checkpoints and the final save.
constexpr double kTimeBudgetShare = 0.95;
constexpr int kPlanTrials = 3;
constexpr double kStepOverhead = 1.1;
// A time-limited run re-plans after kReplanAt steps and then every kReplanEvery, from the pace
// measured so far in this process (only ever fewer steps), so that the schedule (warmup + decay)
// ends when the budget does even when the machine gets slower.
constexpr int64_t kReplanAt = 40;
constexpr int64_t kReplanEvery = 200;
constexpr double kReplanMinShrink = 0.99;  // smaller changes are not worth a new schedule

Status write_text(const std::string& path, const std::string& text) {
  return write_file_atomic(path, text.data(), text.size());
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

StatusOr<json> read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return data_loss(path + ": malformed JSON");
  return j;
}

// The parts of a config that must not change across a resume (what is trained on, with what).
json resume_identity(const TrainConfig& c) {
  json j = c.to_json();
  return {{"model", j["model"]},
          {"tokenizer", j["tokenizer"]},
          {"data", j["data"]},
          {"batch_tokens", j["batch_tokens"]},
          {"grad_accum", j["grad_accum"]},
          {"seed", j["seed"]},
          {"optimizer", j["optimizer"]},
          {"schedule", j["schedule"]}};
}

}  // namespace

struct Trainer::Impl {
  TrainConfig config;
  TrainerOptions options;
  TrainerCallbacks callbacks;

  RunSamples samples;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string tokenizer_dir;
  std::unique_ptr<RunImageSource> images;
  std::vector<EncodedSample> encoded;
  SkipCounters encode_skips;
  std::optional<BatchStream> stream;

  VlmConfig vlm;
  ParamStore store;
  std::unique_ptr<VlmModel> model;
  std::optional<AdamW> optimizer;
  std::unique_ptr<StepEngine> engine;  // where the steps run (config.device)
  std::optional<LrSchedule> schedule;
  LinearPrecision precision;
  std::optional<MetricsWriter> metrics;
  std::unique_ptr<data::FashionSplit> fashion_test;

  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t tokens = 0;
  double elapsed_before = 0;  // seconds trained before this process (resume)
  Clock::time_point run_start = Clock::now();
  double elapsed_now() const { return elapsed_before + seconds_since(run_start); }
  int64_t skipped_steps = 0;
  std::vector<double> losses;
  std::string last_checkpoint;

  void log(const std::string& message) const {
    if (callbacks.on_log) callbacks.on_log(message);
  }

  Status setup_data();
  Status setup_model(const std::string& resume_dir);
  Status plan_steps();
  Status set_total_steps(int64_t total);
  Status replan(double budget_s, double start_elapsed, int64_t steps_this_run);
  Status restore(const std::string& dir);
  StatusOr<std::string> save();
  Status evaluate(const std::string& checkpoint);
  Status rewrite_metrics_up_to(int64_t last_step);
};

Status Trainer::Impl::setup_data() {
  VILA_ASSIGN_OR_RETURN(samples, load_run_samples(config));
  log("data: " + std::to_string(samples.samples.size()) + " samples" +
      (samples.report.skipped
           ? " (" + std::to_string(samples.report.skipped) + " bad records skipped)"
           : std::string()));
  // Tokenizer: trained once per run folder (kept for resumes), or given.
  if (config.tokenizer == "train") {
    tokenizer_dir = (fs::path(config.output) / kTokenizerDir).string();
    if (!fs::exists(fs::path(tokenizer_dir) / "tokenizer.json")) {
      log("tokenizer: training a byte-level BPE of " + std::to_string(config.tokenizer_vocab) +
          " ids on the run's text");
      VILA_RETURN_IF_ERROR(
          train_run_tokenizer(samples.samples, config.tokenizer_vocab, tokenizer_dir));
    }
  } else {
    tokenizer_dir = fs::is_directory(config.tokenizer)
                        ? config.tokenizer
                        : fs::path(config.tokenizer).parent_path().string();
  }
  VILA_ASSIGN_OR_RETURN(tokenizer, Tokenizer::load_dir(tokenizer_dir));
  return ok_status();
}

Status Trainer::Impl::setup_model(const std::string& resume_dir) {
  if (!config.init_from.empty()) {
    VILA_RETURN_IF_ERROR(load_released(config.init_from, store, &vlm));
  } else {
    VILA_ASSIGN_OR_RETURN(vlm, vlm_preset(config.model_preset));
    json j = vlm.to_json();
    if (config.model_overrides.is_object()) j.merge_patch(config.model_overrides);
    j["llm"]["vocab"] = tokenizer->n_tokens();
    VILA_ASSIGN_OR_RETURN(vlm, VlmConfig::from_json(j, config.source + ": model"));
  }
  if (vlm.llm.vocab < tokenizer->n_tokens()) {
    return invalid_argument(config.source + ": the model's vocabulary (" +
                            std::to_string(vlm.llm.vocab) + ") is smaller than the tokenizer's (" +
                            std::to_string(tokenizer->n_tokens()) + ")");
  }
  vlm.llm.eos_token_id =
      tokenizer->piece_to_id("<|im_end|>").value_or(tokenizer->eos_id.value_or(-1));
  vlm.llm.pad_token_id = tokenizer->piece_to_id("<|endoftext|>").value_or(-1);
  VILA_ASSIGN_OR_RETURN(model, VlmModel::create(vlm, store));
  if (config.init_from.empty()) model->init(config.seed);
  if (!resume_dir.empty()) {
    VlmConfig saved;
    VILA_RETURN_IF_ERROR(load_released(resume_dir, store, &saved));
  }
  VILA_ASSIGN_OR_RETURN(auto modules, config.trainable_modules());
  for (int m = 0; m < kParamModules; ++m) {
    store.set_trainable(static_cast<ParamModule>(m), modules[static_cast<size_t>(m)]);
  }
  VILA_ASSIGN_OR_RETURN(precision, precision_preset(config.precision));

  // Images and encoding follow the model's vision geometry.
  PreprocessConfig pre;
  pre.image_aspect_ratio = "resize";
  pre.image_size = static_cast<int>(vlm.vision.image_size);
  pre.patch_size = static_cast<int>(vlm.vision.patch_size);
  VILA_ASSIGN_OR_RETURN(pre.projector_downsample, projector_downsample_factor(vlm.projector.type));
  images = std::make_unique<RunImageSource>(samples.fashion.get(), pre);
  ChatTemplate chat;
  chat.kind = ChatTemplateKind::kQwen2;
  VILA_ASSIGN_OR_RETURN(EncodeContext context,
                        make_encode_context(*tokenizer, chat, pre, config.batch_tokens));
  VILA_ASSIGN_OR_RETURN(encoded, encode_all(samples.samples, context, &encode_skips));
  if (encode_skips.total() > 0) {
    log("data: " + std::to_string(encode_skips.total()) + " samples skipped at encoding (" +
        std::to_string(encode_skips.too_long) +
        " longer than batch_tokens); first: " + encode_skips.messages.front());
  }
  BatchOptions batch;
  batch.max_tokens = config.batch_tokens;
  batch.tokens_per_image = vlm.tokens_per_image();
  VILA_ASSIGN_OR_RETURN(BatchStream s, BatchStream::create(&encoded, images.get(), batch,
                                                           config.data_seed ^ config.seed));
  stream.emplace(std::move(s));

  AdamWConfig adam;
  adam.beta1 = config.beta1;
  adam.beta2 = config.beta2;
  adam.eps = config.eps;
  adam.weight_decay = config.weight_decay;
  VILA_ASSIGN_OR_RETURN(adam.exp_avg_format, parse_state_format(config.state_format));
  adam.exp_avg_sq_format = adam.exp_avg_format;
  VILA_ASSIGN_OR_RETURN(AdamW opt, AdamW::create(adam));
  optimizer.emplace(std::move(opt));
  VILA_ASSIGN_OR_RETURN(
      engine, make_step_engine(config.device, *model, store, *optimizer, config.deterministic));
  if (config.device == "cuda") {
    log("device: cuda (every GEMM with bf16 operands and fp32 accumulation, whatever the precision "
        "preset; fp32 master weights, gradients and moments)");
  }
  return ok_status();
}

// Steps of the run: config.steps, or what fits the time budget at the rate of one timed trial
// micro-batch (forward + backward, gradients discarded).
Status Trainer::Impl::plan_steps() {
  if (config.steps > 0) {
    total_steps = config.steps;
  } else {
    const StreamState saved = stream->state();
    VILA_ASSIGN_OR_RETURN(PackedBatch batch, stream->next());
    TrainOptions opts;
    opts.precision = precision;
    // The fastest of a few trials: the first pays for buffer growth and cold caches.
    double best = 1e30;
    for (int trial = 0; trial < kPlanTrials; ++trial) {
      const auto t0 = Clock::now();
      VILA_RETURN_IF_ERROR(engine->forward_backward(batch, opts).status());
      best = std::min(best, seconds_since(t0));
    }
    // The optimizer step and the data adds about a tenth to the forward + backward.
    const double per_step = best * kStepOverhead * static_cast<double>(config.grad_accum);
    VILA_RETURN_IF_ERROR(engine->zero_grads());
    VILA_RETURN_IF_ERROR(stream->restore(saved));
    total_steps = std::max<int64_t>(
        1,
        static_cast<int64_t>(config.minutes * 60.0 * kTimeBudgetShare / std::max(per_step, 1e-6)));
    std::ostringstream msg;
    msg.precision(3);
    msg << "plan: " << total_steps << " steps in " << config.minutes << " min (" << per_step * 1e3
        << " ms per step measured)";
    log(msg.str());
  }
  LrScheduleConfig sc;
  VILA_ASSIGN_OR_RETURN(sc.kind, parse_lr_schedule(config.schedule));
  sc.peak_lr = config.lr;
  sc.total_steps = total_steps;
  VILA_ASSIGN_OR_RETURN(sc.warmup_steps, warmup_steps_from_ratio(config.warmup_ratio, total_steps));
  sc.min_lr_ratio = config.min_lr_ratio;
  VILA_ASSIGN_OR_RETURN(LrSchedule s, LrSchedule::create(sc));
  schedule.emplace(s);
  return ok_status();
}

Status Trainer::Impl::set_total_steps(int64_t total) {
  total_steps = total;
  LrScheduleConfig sc = schedule->config();
  sc.total_steps = total;
  VILA_ASSIGN_OR_RETURN(sc.warmup_steps, warmup_steps_from_ratio(config.warmup_ratio, total));
  VILA_ASSIGN_OR_RETURN(LrSchedule s, LrSchedule::create(sc));
  schedule.emplace(s);
  return ok_status();
}

Status Trainer::Impl::replan(double budget_s, double start_elapsed, int64_t steps_this_run) {
  const double elapsed = elapsed_now();
  const double per_step = (elapsed - start_elapsed) / static_cast<double>(steps_this_run);
  const auto fit = step + static_cast<int64_t>((budget_s * kTimeBudgetShare - elapsed) / per_step);
  if (static_cast<double>(fit) >= kReplanMinShrink * static_cast<double>(total_steps)) {
    return ok_status();
  }
  std::ostringstream msg;
  msg.precision(3);
  msg << "plan: " << std::max(fit, step + 1) << " steps (measured " << per_step * 1e3
      << " ms per step)";
  log(msg.str());
  return set_total_steps(std::max(fit, step + 1));
}

Status Trainer::Impl::restore(const std::string& dir) {
  VILA_ASSIGN_OR_RETURN(json state, read_json_file((fs::path(dir) / kStateFile).string()));
  const std::string where = (fs::path(dir) / kStateFile).string();
  if (state.value("identity", json()) != resume_identity(config)) {
    return invalid_argument(where +
                            ": the checkpoint was written by a run with another model, "
                            "data, tokenizer, batch, optimizer or schedule config; resume "
                            "needs the same config (or start a new output folder)");
  }
  try {
    step = state.at("step").get<int64_t>();
    total_steps = state.at("total_steps").get<int64_t>();
    tokens = state.at("tokens").get<int64_t>();
    elapsed_before = state.at("elapsed_s").get<double>();
    skipped_steps = state.at("skipped_steps").get<int64_t>();
    losses = state.at("losses").get<std::vector<double>>();
  } catch (const json::exception& e) {
    return data_loss(where + ": " + e.what());
  }
  VILA_ASSIGN_OR_RETURN(StreamState ss,
                        StreamState::from_json(state.value("stream", json()), where));
  VILA_RETURN_IF_ERROR(stream->restore(ss));
  VILA_ASSIGN_OR_RETURN(auto file,
                        SafetensorsFile::open((fs::path(dir) / kOptimizerFile).string()));
  VILA_RETURN_IF_ERROR(optimizer->load(*file, store));
  VILA_RETURN_IF_ERROR(engine->from_host());
  VILA_RETURN_IF_ERROR(rewrite_metrics_up_to(step));
  log("resumed from " + dir + " at step " + std::to_string(step));
  return ok_status();
}

// Drops metrics written after the checkpoint a run resumes from (they would repeat).
Status Trainer::Impl::rewrite_metrics_up_to(int64_t last_step) {
  const std::string path = (fs::path(config.output) / kMetricsFile).string();
  std::ifstream in(path);
  std::string kept;
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || !j["step"].is_number_integer()) continue;
    if (j["step"].get<int64_t>() <= last_step) kept += line + "\n";
  }
  return write_text(path, kept);
}

StatusOr<std::string> Trainer::Impl::save() {
  const double elapsed = elapsed_now();
  VILA_RETURN_IF_ERROR(engine->to_host());
  VILA_ASSIGN_OR_RETURN(
      std::string dir,
      commit_checkpoint(
          config.output, step, static_cast<int>(config.checkpoint_keep),
          [&](const std::string& tmp) -> Status {
            // First: save_released replaces the folder it is given.
            SaveReleasedOptions so;
            so.tokenizer_files = tokenizer_files_in(tokenizer_dir);
            so.chat_template = "qwen2";
            VILA_RETURN_IF_ERROR(save_released(tmp, vlm, store, so));
            SafetensorsWriter writer;
            VILA_RETURN_IF_ERROR(optimizer->save(writer));
            VILA_RETURN_IF_ERROR(writer.write((fs::path(tmp) / kOptimizerFile).string()));
            json state = {{"step", step},
                          {"total_steps", total_steps},
                          {"tokens", tokens},
                          {"elapsed_s", elapsed},
                          {"skipped_steps", skipped_steps},
                          {"losses", losses},
                          {"stream", stream->state().to_json()},
                          {"identity", resume_identity(config)},
                          {"config", config.to_json()}};
            return write_text((fs::path(tmp) / kStateFile).string(), state.dump(1) + "\n");
          }));
  last_checkpoint = dir;
  log("checkpoint: " + dir);
  return dir;
}

Status Trainer::Impl::evaluate(const std::string& checkpoint) {
  if (!fashion_test) {
    VILA_ASSIGN_OR_RETURN(data::FashionSplit t,
                          data::load_fashion_split(data::kFashionMnistDir, "t10k"));
    fashion_test = std::make_unique<data::FashionSplit>(std::move(t));
  }
  VILA_ASSIGN_OR_RETURN(auto loaded, VilaModel::load(checkpoint));
  EvalOptions eo;
  eo.samples = config.eval_samples;
  eo.examples = config.eval_examples;
  eo.work_dir = (fs::path(config.output) / "eval_images").string();
  VILA_ASSIGN_OR_RETURN(EvalResult r, eval_fashion(*loaded, *fashion_test, eo));
  if (metrics) {
    VILA_RETURN_IF_ERROR(metrics->write(step, {{"eval_accuracy", r.accuracy()}}));
  }
  if (callbacks.on_eval) callbacks.on_eval(step, r);
  return ok_status();
}

Trainer::Trainer() : impl_(std::make_unique<Impl>()) {}
Trainer::~Trainer() = default;

StatusOr<std::unique_ptr<Trainer>> Trainer::create(const TrainConfig& config,
                                                   const TrainerOptions& options,
                                                   TrainerCallbacks callbacks) {
  std::unique_ptr<Trainer> t(new Trainer());
  Impl& m = *t->impl_;
  m.config = config;
  m.options = options;
  m.callbacks = std::move(callbacks);
  std::error_code ec;
  fs::create_directories(config.output, ec);
  if (ec) return data_loss(config.output + ": cannot create the output folder: " + ec.message());
  std::string resume_dir;
  if (options.resume) {
    VILA_ASSIGN_OR_RETURN(resume_dir, latest_checkpoint(config.output));
  }
  VILA_RETURN_IF_ERROR(m.setup_data());
  VILA_RETURN_IF_ERROR(m.setup_model(resume_dir));
  if (resume_dir.empty()) {
    VILA_RETURN_IF_ERROR(m.plan_steps());
  } else {
    VILA_RETURN_IF_ERROR(m.restore(resume_dir));
    const int64_t planned = m.total_steps;
    VILA_RETURN_IF_ERROR(m.plan_steps());  // the schedule, with the saved total below
    if (planned != m.total_steps) VILA_RETURN_IF_ERROR(m.set_total_steps(planned));
  }
  VILA_RETURN_IF_ERROR(write_text((fs::path(config.output) / "config.json").string(),
                                  config.to_json().dump(2) + "\n"));
  VILA_ASSIGN_OR_RETURN(MetricsWriter w,
                        MetricsWriter::open((fs::path(config.output) / kMetricsFile).string(),
                                            /*truncate=*/resume_dir.empty()));
  m.metrics.emplace(std::move(w));
  return t;
}

Status Trainer::run() {
  Impl& m = *impl_;
  m.run_start = Clock::now();
  const double start_elapsed = m.elapsed_before;
  const double budget_s = m.config.minutes * 60.0;
  int64_t steps_this_run = 0;
  int skips_in_a_row = 0;
  bool saved_at_step = false;
  TrainOptions opts;
  opts.precision = m.precision;
  while (m.step < m.total_steps) {
    if (budget_s > 0 && m.elapsed_now() >= budget_s) {
      m.log("time budget reached at step " + std::to_string(m.step));
      break;
    }
    if (m.options.stop_after > 0 && steps_this_run >= m.options.stop_after) break;
    const auto t0 = Clock::now();
    std::vector<PackedBatch> micro;
    int64_t normalizer = 0;
    int64_t rows = 0;
    for (int64_t a = 0; a < m.config.grad_accum; ++a) {
      VILA_ASSIGN_OR_RETURN(PackedBatch b, m.stream->next());
      normalizer += b.trained_tokens();
      rows += b.tokens();
      micro.push_back(std::move(b));
    }
    opts.normalizer = std::max<int64_t>(normalizer, 1);
    double loss = 0;
    bool finite = true;
    for (const PackedBatch& b : micro) {
      VILA_ASSIGN_OR_RETURN(StepResult r, m.engine->forward_backward(b, opts));
      loss += r.loss;
      if (!std::isfinite(r.loss)) {
        finite = false;
        break;
      }
    }
    if (finite && m.options.after_backward && m.engine->host_gradients()) {
      m.options.after_backward(m.step + 1, m.store);
    }
    double norm = 0;
    if (finite) {
      VILA_ASSIGN_OR_RETURN(GradClipResult clip, m.engine->clip(m.config.clip_grad_norm));
      norm = clip.norm;
      finite = clip.finite && std::isfinite(clip.norm);
    }
    const double lr = m.schedule->lr(m.step);
    StepMetrics sm;
    if (!finite) {
      VILA_RETURN_IF_ERROR(m.engine->zero_grads());
      if (m.config.on_nan == "stop") {
        return data_loss("step " + std::to_string(m.step + 1) +
                         ": the loss or the gradient is not finite (loss " + std::to_string(loss) +
                         "); training stopped, the last checkpoint is " +
                         (m.last_checkpoint.empty() ? std::string("none (nothing saved yet)")
                                                    : m.last_checkpoint));
      }
      ++m.skipped_steps;
      if (++skips_in_a_row >= kMaxSkipsInARow) {
        return data_loss("step " + std::to_string(m.step + 1) + ": " +
                         std::to_string(kMaxSkipsInARow) +
                         " non-finite steps in a row; training stopped");
      }
      sm.skipped = true;
    } else {
      skips_in_a_row = 0;
      VILA_RETURN_IF_ERROR(m.engine->step(lr));
      VILA_RETURN_IF_ERROR(m.engine->zero_grads());
    }
    m.step++;
    steps_this_run++;
    saved_at_step = false;
    for (const PackedBatch& b : micro) m.tokens += b.trained_tokens();
    m.losses.push_back(loss);
    const double step_s = seconds_since(t0);
    const double elapsed = m.elapsed_now();
    sm.step = m.step;
    sm.total_steps = m.total_steps;
    sm.loss = loss;
    sm.lr = lr;
    sm.grad_norm = norm;
    sm.tokens = m.tokens;
    sm.batch_tokens = rows;
    sm.tokens_per_s = static_cast<double>(rows) / std::max(step_s, 1e-9);
    sm.elapsed_s = elapsed;
    sm.eta_s = elapsed / static_cast<double>(m.step) * static_cast<double>(m.total_steps - m.step);
    if (budget_s > 0) sm.eta_s = std::min(sm.eta_s, std::max(0.0, budget_s - elapsed));
    sm.epoch = m.stream->epoch();
    VILA_RETURN_IF_ERROR(m.metrics->write(m.step, {{"loss", loss},
                                                   {"lr", lr},
                                                   {"grad_norm", norm},
                                                   {"tokens", double(m.tokens)},
                                                   {"tokens_per_s", sm.tokens_per_s},
                                                   {"time", elapsed},
                                                   {"skipped", sm.skipped ? 1.0 : 0.0}}));
    if (m.callbacks.on_step) m.callbacks.on_step(sm);
    if (m.config.steps == 0 && steps_this_run >= kReplanAt &&
        (steps_this_run - kReplanAt) % kReplanEvery == 0) {
      VILA_RETURN_IF_ERROR(m.replan(budget_s, start_elapsed, steps_this_run));
    }
    const bool ckpt = m.config.checkpoint_every > 0 && m.step % m.config.checkpoint_every == 0;
    const bool eval = m.config.eval_every > 0 && m.step % m.config.eval_every == 0;
    if (ckpt || eval) {
      VILA_ASSIGN_OR_RETURN(std::string dir, m.save());
      saved_at_step = true;
      if (eval) VILA_RETURN_IF_ERROR(m.evaluate(dir));
    }
  }
  if (!saved_at_step && m.step > 0) {
    VILA_RETURN_IF_ERROR(m.save().status());
    if (m.config.eval_every > 0) VILA_RETURN_IF_ERROR(m.evaluate(m.last_checkpoint));
  }
  return ok_status();
}

const std::vector<double>& Trainer::losses() const { return impl_->losses; }
const std::string& Trainer::last_checkpoint() const { return impl_->last_checkpoint; }
int64_t Trainer::step() const { return impl_->step; }
int64_t Trainer::parameter_count() const { return impl_->store.count(false); }
int64_t Trainer::trainable_count() const { return impl_->store.count(true); }

}  // namespace vila::train
