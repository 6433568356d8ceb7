// vila bench --device cuda --ttft: time to first token for one image plus a question, on random
// weights of a real NVILA shape, broken into stages (median of --ttft-runs runs after a warm-up):
//   decode      the image file -> RGB (load_image: libjpeg-turbo / libpng, as Pillow decodes)
//   preprocess  VILA's tiling (dynamic S2: the 448 and 896 scales + the aspect-ratio grid of the
//               1344 scale; NVILA-Lite: the grid + a thumbnail) and normalisation, on the CPU
//   vision      CudaVisionEncoder::encode_device: pixel upload + SigLIP (tower), then S2 merge +
//               projector (projector), reported separately; the rows stay on the GPU
//   splice      the template and question embeddings (LlmEngine::embed, uploaded) and the visual
//               rows (device to device) into one device prompt buffer (allocated once)
//   prefill     LlmEngine::prefill_device of the whole prompt, logits of the last row
//   first token argmax of those logits on the host
// The prompt is VILA's qwen2 chat template around the image and a question of question_tokens
// tokens (fixed Qwen2 ids: the benchmark has no tokenizer): 13 template tokens, then per media
// item its visual rows + the image encoder's "\n" end token (NVILA-Lite: one item per tile, each
// followed by a "\n" text token), the question, and the 5 tokens that open the assistant turn.
#include "cmd_bench_ttft.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda/memory.h"
#include "model/vision_cuda.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace vila::cli {

namespace {

// Qwen2 tokenizer ids of the chat template.
constexpr int32_t kImStart = 151644, kImEnd = 151645, kNewline = 198;
constexpr int32_t kSystem = 8948, kUser = 872, kAssistant = 77091;
constexpr int32_t kYouAreAHelpfulAssistant[] = {2610, 525, 264, 10950, 17847};
constexpr int32_t kQuestionIdBase = 1000;  // question token i: kQuestionIdBase + 37 * i

// "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"
std::vector<int32_t> template_prefix() {
  std::vector<int32_t> ids = {kImStart, kSystem, kNewline};
  ids.insert(ids.end(), std::begin(kYouAreAHelpfulAssistant), std::end(kYouAreAHelpfulAssistant));
  ids.insert(ids.end(), {kImEnd, kNewline, kImStart, kUser, kNewline});
  return ids;
}
// "<|im_end|>\n<|im_start|>assistant\n"
std::vector<int32_t> template_suffix() {
  return {kImEnd, kNewline, kImStart, kAssistant, kNewline};
}

constexpr int kMaxTiles = 12;         // max_tiles of both shapes
constexpr int64_t kS2Tokens = 256;    // 2x2 projector tokens per 448 block
constexpr int64_t kLiteTokens = 121;  // 3x3 projector tokens per tile

bool is_lite(const std::string& shape) { return shape == "nvila-lite-2b"; }

#ifdef VILA_WITH_CUDA

PreprocessConfig preprocess_config(const std::string& shape) {
  PreprocessConfig p;
  p.max_tiles = kMaxTiles;
  if (is_lite(shape)) {
    p.image_aspect_ratio = "dynamic";
    p.min_tiles = 1;
    p.projector_downsample = 3;
  } else {
    p.image_aspect_ratio = "dynamic_s2";
    p.s2_scales = {448, 896, 1344};
    p.projector_downsample = 2;
  }
  return p;
}

VisionGeometry vision_geometry(const std::string& shape, int64_t llm_hidden) {
  VisionGeometry g = VisionGeometry::nvila_8b();
  g.vision.llm_hidden = llm_hidden;
  if (is_lite(shape)) {
    g.vision.dynamic_s2 = false;
    g.vision.s2_scales.clear();
    g.vision.s2_resize_idx = 0;
    g.projector_type = "mlp_downsample_3x3_fix";
  }
  return g;
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The stage names, in order (the JSON keys).
constexpr const char* kStages[] = {"decode", "preprocess", "vision_tower", "vision_projector",
                                   "splice", "prefill",    "first_token"};

struct OneRun {
  std::map<std::string, double> ms;
  double total = 0;
  int64_t tiles = 0, visual_tokens = 0, prompt_tokens = 0;
  int width = 0, height = 0;
  double tower_flops = 0;
  int32_t token = -1;
};

// Device memory of the prompt: (max prompt tokens, C) fp32 rows, and the stream the splice
// copies run on. Made once, as a serving loop keeps them.
struct PromptBuffer {
  cuda::DeviceBuffer rows;
  cuda::Stream stream;
};

StatusOr<OneRun> run_once(const CudaBenchArgs& args, const PreprocessConfig& pcfg,
                          CudaVisionEncoder& vision, LlmEngine& engine, PromptBuffer& prompt) {
  OneRun r;
  const int64_t C = engine.config().hidden, V = engine.config().vocab_size;
  const auto t_start = Clock::now();
  auto t0 = t_start;
  VILA_ASSIGN_OR_RETURN(Image image, load_image(args.image));
  r.ms["decode"] = ms_since(t0);
  r.width = image.width;
  r.height = image.height;

  t0 = Clock::now();
  VILA_ASSIGN_OR_RETURN(PreprocessedImage pre, preprocess_image(image, pcfg, true));
  ImageTiles tiles;
  tiles.n_tiles = pre.num_tiles;
  tiles.size = pre.tile_size;
  tiles.rows = pre.block_rows;
  tiles.cols = pre.block_cols;
  tiles.pixels = std::move(pre.data);
  r.ms["preprocess"] = ms_since(t0);
  r.tiles = tiles.n_tiles;

  // NVILA-Lite encodes every tile as its own media item; one batch of all tiles without an S2
  // grid gives the same rows in the same order (VisionEncoder's non-S2 path).
  vision.reset_timings();
  VILA_ASSIGN_OR_RETURN(CudaVisionEncoder::DeviceRows visual, vision.encode_device(tiles));
  r.visual_tokens = visual.n_tokens;
  r.ms["vision_tower"] = vision.timings().tower_ms;
  r.ms["vision_projector"] = vision.timings().projector_ms;
  r.tower_flops = vision.last_flops();

  // (n, C) fp32 device prompt rows: template, media items (rows + "\n" end token [+ "\n"
  // text]), question, assistant opening.
  t0 = Clock::now();
  const bool lite = is_lite(args.model_shape);
  const int64_t items = lite ? r.tiles : 1;
  const int64_t per_item = r.visual_tokens / items;
  std::vector<int32_t> ids = template_prefix();
  const auto n_prefix = static_cast<int64_t>(ids.size());
  for (int64_t i = 0; i < args.question_tokens; ++i) {
    ids.push_back(static_cast<int32_t>(kQuestionIdBase + 37 * i));
  }
  const std::vector<int32_t> suffix = template_suffix();
  ids.insert(ids.end(), suffix.begin(), suffix.end());
  ids.push_back(kNewline);  // the rows of "\n" used after each media item
  std::vector<float> text(ids.size() * static_cast<size_t>(C));
  VILA_RETURN_IF_ERROR(engine.embed(ids.data(), static_cast<int64_t>(ids.size()), text.data()));
  const int64_t newline_rows = lite ? 2 : 1;
  r.prompt_tokens = static_cast<int64_t>(ids.size()) - 1 + r.visual_tokens + items * newline_rows;
  const size_t row_bytes = static_cast<size_t>(C) * sizeof(float);
  if (static_cast<size_t>(r.prompt_tokens) * row_bytes > prompt.rows.bytes()) {
    return internal_error("bench ttft: prompt of " + std::to_string(r.prompt_tokens) +
                          " rows exceeds the prompt buffer");
  }
  float* embeds = prompt.rows.as<float>();  // (prompt_tokens, C) fp32 device
  void* st = prompt.stream.handle();
  int64_t at = 0;  // rows written
  auto host_rows = [&](const float* rows, int64_t n) -> Status {
    VILA_RETURN_IF_ERROR(cuda::copy_to_device(embeds + at * C, rows, n * row_bytes, st));
    at += n;
    return ok_status();
  };
  const float* newline_row = text.data() + (ids.size() - 1) * static_cast<size_t>(C);
  VILA_RETURN_IF_ERROR(host_rows(text.data(), n_prefix));
  for (int64_t i = 0; i < items; ++i) {
    VILA_RETURN_IF_ERROR(cuda::copy_device_to_device(
        embeds + at * C, visual.rows + i * per_item * C, per_item * row_bytes, st));
    at += per_item;
    for (int64_t j = 0; j < newline_rows; ++j) VILA_RETURN_IF_ERROR(host_rows(newline_row, 1));
  }
  VILA_RETURN_IF_ERROR(host_rows(text.data() + n_prefix * C,
                                 static_cast<int64_t>(ids.size()) - 1 - n_prefix));  // question
  VILA_RETURN_IF_ERROR(prompt.stream.synchronize());  // the engine's stream reads the rows next
  if (at != r.prompt_tokens) {
    return internal_error("bench ttft: spliced " + std::to_string(at) + " rows, expected " +
                          std::to_string(r.prompt_tokens));
  }
  r.ms["splice"] = ms_since(t0);

  t0 = Clock::now();
  std::vector<float> logits(static_cast<size_t>(V));
  VILA_ASSIGN_OR_RETURN(int seq, engine.new_sequence());
  const Status pst = engine.prefill_device(seq, embeds, r.prompt_tokens, logits.data(), 1);
  engine.release(seq);
  VILA_RETURN_IF_ERROR(pst);
  r.ms["prefill"] = ms_since(t0);

  t0 = Clock::now();
  r.token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  r.ms["first_token"] = ms_since(t0);
  r.total = ms_since(t_start);
  return r;
}

#endif  // VILA_WITH_CUDA

}  // namespace

StatusOr<std::string> llm_preset_of_shape(const std::string& model_shape) {
  if (model_shape == "nvila-8b") return std::string("qwen2-7b");
  if (model_shape == "nvila-lite-2b") return std::string("qwen2-1.5b");
  return invalid_argument("vila bench: unknown --model-shape '" + model_shape +
                          "' (expected nvila-8b or nvila-lite-2b)");
}

int64_t ttft_max_prompt_tokens(const CudaBenchArgs& args) {
  const int64_t text = static_cast<int64_t>(template_prefix().size() + template_suffix().size()) +
                       args.question_tokens;
  if (is_lite(args.model_shape)) return text + (kMaxTiles + 1) * (kLiteTokens + 2);
  return text + kMaxTiles * kS2Tokens + 1;
}

#ifdef VILA_WITH_CUDA

Status bench_ttft(const CudaBenchArgs& args, LlmEngine& engine, nlohmann::json& out) {
  if (args.image.empty()) return invalid_argument("vila bench --ttft needs --image FILE");
  const DType dtype = engine.options().dtype;
  const PreprocessConfig pcfg = preprocess_config(args.model_shape);
  std::fprintf(stderr, "bench: building random %s vision (SigLIP-so400m 448, %s)\n",
               args.model_shape.c_str(), dtype_name(dtype));
  CudaVisionOptions vo;
  vo.compute = dtype;
  vo.max_tiles = is_lite(args.model_shape) ? kMaxTiles + 1 : 1 + 4 + kMaxTiles;
  VILA_ASSIGN_OR_RETURN(
      std::unique_ptr<CudaVisionEncoder> vision,
      CudaVisionEncoder::create_random(vision_geometry(args.model_shape, engine.config().hidden),
                                       dtype, 4321, vo));

  PromptBuffer prompt;
  VILA_ASSIGN_OR_RETURN(
      prompt.rows, cuda::DeviceBuffer::create(static_cast<size_t>(ttft_max_prompt_tokens(args)) *
                                              engine.config().hidden * sizeof(float)));
  VILA_ASSIGN_OR_RETURN(prompt.stream, cuda::Stream::create());
  std::vector<OneRun> runs;
  for (int i = 0; i <= args.ttft_runs; ++i) {  // run 0 is the warm-up
    VILA_ASSIGN_OR_RETURN(OneRun r, run_once(args, pcfg, *vision, engine, prompt));
    if (i > 0) runs.push_back(std::move(r));
  }
  const OneRun& first = runs.front();
  nlohmann::json stages = nlohmann::json::object();
  std::printf(
      "time to first token (%s, %s): %s %dx%d, %lld tiles, %lld visual tokens, %lld prompt "
      "tokens; median of %d runs\n",
      args.model_shape.c_str(), dtype_name(dtype), args.image.c_str(), first.width, first.height,
      static_cast<long long>(first.tiles), static_cast<long long>(first.visual_tokens),
      static_cast<long long>(first.prompt_tokens), args.ttft_runs);
  std::vector<double> tower_tflops;
  for (const OneRun& r : runs) {
    tower_tflops.push_back(r.tower_flops / (r.ms.at("vision_tower") * 1e-3) / 1e12);
  }
  for (const char* stage : kStages) {
    std::vector<double> v;
    for (const OneRun& r : runs) v.push_back(r.ms.at(stage));
    const double m = median(v);
    stages[stage] = m;
    std::printf("  ttft %-17s %9.2f ms\n", stage, m);
  }
  std::vector<double> totals;
  for (const OneRun& r : runs) totals.push_back(r.total);
  const double total = median(totals);
  std::printf("  ttft %-17s %9.2f ms  (first token id %d; SigLIP %.0f TFLOP/s incl. upload)\n",
              "total", total, first.token, median(tower_tflops));
  out["ttft"] = {{"model_shape", args.model_shape},
                 {"image", args.image},
                 {"width", first.width},
                 {"height", first.height},
                 {"tiles", first.tiles},
                 {"visual_tokens", first.visual_tokens},
                 {"prompt_tokens", first.prompt_tokens},
                 {"runs", args.ttft_runs},
                 {"stages_ms", stages},
                 {"total_ms", total},
                 {"tower_tflops", median(tower_tflops)},
                 {"first_token", first.token}};
  return ok_status();
}

#else  // !VILA_WITH_CUDA

Status bench_ttft(const CudaBenchArgs&, LlmEngine&, nlohmann::json&) {
  return unimplemented("vila bench --ttft: built without CUDA (VILA_CUDA=OFF)");
}

#endif

}  // namespace vila::cli
