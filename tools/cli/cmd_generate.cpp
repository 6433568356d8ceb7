// vila generate: text generation with the chat template, streaming to stdout.
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "cli_common.h"
#include "runtime/generate.h"
#include "runtime/generate_batch.h"

namespace vila::cli {

namespace {
struct GenerateArgs {
  std::string model;
  std::vector<std::string> images;
  std::string prompt;
  int64_t max_new_tokens = 256;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  int64_t ctx_size = 0;
  int64_t max_image_pixels = kPillowMaxImagePixels;
  bool raw = false;
  bool json = false;
  std::string chat_template;
  DeviceArgs device;
  std::string prompts_file;
  int batch = 8;
};

nlohmann::json result_json(const GenerateResult& r, const char* device) {
  const GenerateTimings& t = r.timings;
  return {{"text", r.text},
          {"token_ids", r.output_ids},
          {"prompt_tokens", t.prompt_tokens},
          {"generated_tokens", t.generated_tokens},
          {"stop_reason", r.stop_reason},
          {"device", device},
          {"timings",
           {{"prefill_ms", t.prefill_ms},
            {"decode_ms", t.decode_ms},
            {"decode_tokens_per_s", t.decode_tokens_per_s()}}}};
}

// --prompts-file: one text prompt per non-empty line, answered in batches of --batch on the GPU
// (one decode step for all of them), one after another on the CPU; one JSON line per prompt.
int run_generate_batch(const GenerateArgs& args, VilaModel& model, const GenerateOptions& options) {
  std::ifstream in(args.prompts_file);
  if (!in) return report_error(not_found("cannot open --prompts-file " + args.prompts_file));
  std::vector<PromptInput> prompts;
  int64_t longest = 0;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto media = model.build_prompt(line, {}, args.raw);
    if (!media.ok()) {
      return report_error(invalid_argument(args.prompts_file + ":" + std::to_string(line_no) +
                                           ": " + media.status().message()));
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(media->input.ids.size()));
    prompts.push_back(std::move(media->input));
  }
  if (prompts.empty()) return report_error(invalid_argument(args.prompts_file + ": no prompts"));
  int64_t positions = std::min(longest + args.max_new_tokens, model.llm().config().max_position);
  if (args.ctx_size > 0) positions = std::min(positions, args.ctx_size);
  const bool cuda =
      args.device.device == "cuda" || (args.device.device == "auto" && cuda_available());
  if (!cuda) {
    for (const PromptInput& p : prompts) {
      auto r = generate(model.llm(), model.tokenizer(), p, options);
      if (!r.ok()) return report_error(r.status());
      std::printf("%s\n", result_json(*r, "cpu")
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
    }
    return 0;
  }
  LlmEngineOptions o;
  o.dtype = args.device.dtype == "fp16" ? DType::kF16 : DType::kBF16;
  o.max_batch = std::max(1, std::min<int>(args.batch, static_cast<int>(prompts.size())));
  o.max_seq = std::max<int64_t>(1, positions);
  o.max_chunk = std::min<int64_t>(o.max_seq, 2048);
  auto engine = LlmEngine::create(model.llm(), o);
  if (!engine.ok()) return report_error(engine.status());
  for (size_t start = 0; start < prompts.size(); start += static_cast<size_t>(o.max_batch)) {
    const size_t end = std::min(prompts.size(), start + static_cast<size_t>(o.max_batch));
    const std::vector<PromptInput> group(prompts.begin() + static_cast<int64_t>(start),
                                         prompts.begin() + static_cast<int64_t>(end));
    auto results = generate_batch(**engine, model.llm(), model.tokenizer(), group, options);
    if (!results.ok()) return report_error(results.status());
    for (const GenerateResult& r : *results) {
      std::printf("%s\n", result_json(r, "cuda")
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
    }
  }
  return 0;
}

int run_generate(const GenerateArgs& args) {
  auto model_or = load_model_with_progress(args.model, args.chat_template);
  if (!model_or.ok()) return report_error(model_or.status());
  VilaModel& model = **model_or;
  if (!args.prompts_file.empty()) {
    GenerateOptions options;
    options.max_new_tokens = args.max_new_tokens;
    options.sampling = {args.temperature, args.top_k, args.top_p, args.seed};
    options.stop_ids = model.stop_ids();
    options.context_length = args.ctx_size;
    return run_generate_batch(args, model, options);
  }
  if (args.prompt.empty()) return report_error(invalid_argument("--prompt or --prompts-file"));
  const std::string prompt = text_or_stdin(args.prompt);
  ImageLoadOptions image_options;
  image_options.max_pixels = args.max_image_pixels;
  configure_vision(model, args.device);
  auto media = model.build_prompt(prompt, args.images, args.raw, image_options);
  if (!media.ok()) return report_error(media.status());

  GenerateOptions options;
  options.max_new_tokens = args.max_new_tokens;
  options.sampling = {args.temperature, args.top_k, args.top_p, args.seed};
  options.stop_ids = model.stop_ids();
  options.context_length = args.ctx_size;
  TextCallback stream;
  if (!args.json) {
    stream = [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
  const auto n_prompt = static_cast<int64_t>(
      media->input.has_embeds()
          ? media->input.embeds.size() / static_cast<size_t>(model.llm().config().hidden)
          : media->input.ids.size());
  int64_t positions = n_prompt + args.max_new_tokens;
  if (args.ctx_size > 0) positions = std::min(positions, args.ctx_size);
  positions = std::min(positions, model.llm().config().max_position);
  auto decoder = make_decoder(model, args.device, positions);
  if (!decoder.ok()) return report_error(decoder.status());
  auto result = generate(*decoder->decoder, model.tokenizer(), media->input, options, stream);
  if (!result.ok()) return report_error(result.status());
  if (args.json) {
    const GenerateTimings& t = result->timings;
    nlohmann::json out = {
        {"text", result->text},
        {"token_ids", result->output_ids},
        {"prompt_tokens", t.prompt_tokens},
        {"prompt_token_ids", result->prompt_ids},
        {"generated_tokens", t.generated_tokens},
        {"stop_reason", result->stop_reason},
        {"device", decoder->decoder->backend()},
        {"image_tokens", media->image_tokens},
        {"vision_device", media->vision_device},
        {"timings",
         {{"preprocess_ms", media->preprocess_ms},
          {"vision_ms", media->vision_ms},
          {"projector_ms", media->projector_ms},
          {"prefill_ms", t.prefill_ms},
          {"decode_ms", t.decode_ms},
          {"prefill_tokens_per_s", t.prefill_tokens_per_s()},
          {"decode_tokens_per_s", t.decode_tokens_per_s()}}},
    };
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fputc('\n', stdout);
  }
  return 0;
}
}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate an answer to a prompt");
  cmd->add_option("--model", args->model, "Model folder (NVILA layout or HF LLM folder)")
      ->required()
      ->envname("VILA_MODEL");
  cmd->add_option("--image", args->images, "Image file(s), in the order of <image> markers");
  cmd->add_option("--prompt", args->prompt, "Prompt text; '-' reads standard input");
  cmd->add_option("--prompts-file", args->prompts_file,
                  "One text prompt per line, answered as a batch; prints one JSON line each");
  cmd->add_option("--batch", args->batch, "Prompts decoded together with --prompts-file (cuda)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "Maximum tokens to generate")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0 is greedy")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--top-k", args->top_k, "Keep the k most likely tokens; 0 is off")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", args->seed, "Sampling seed");
  cmd->add_option("--ctx-size", args->ctx_size, "Context length limit; 0 is the model's")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-image-pixels", args->max_image_pixels,
                  "Refuse larger images (decompression bombs)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--chat-template", args->chat_template,
                  "Override the template: qwen2, vicuna_v1, llama_3, none");
  cmd->add_flag("--raw", args->raw, "Use the prompt as is, without the chat template");
  add_device_options(cmd, args->device);
  cmd->add_flag("--json", args->json, "Print one JSON object instead of streaming text");
  cmd->callback([args, &exit_code] { exit_code = run_generate(*args); });
}

}  // namespace vila::cli
