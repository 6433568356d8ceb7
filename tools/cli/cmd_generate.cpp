// vila generate: text generation with the chat template, streaming to stdout.
#include <algorithm>
#include <cstdio>

#include "cli_common.h"
#include "runtime/generate.h"

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
};

int run_generate(const GenerateArgs& args) {
  const std::string prompt = text_or_stdin(args.prompt);
  auto model_or = load_model_with_progress(args.model, args.chat_template);
  if (!model_or.ok()) return report_error(model_or.status());
  VilaModel& model = **model_or;
  ImageLoadOptions image_options;
  image_options.max_pixels = args.max_image_pixels;
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
  cmd->add_option("--prompt", args->prompt, "Prompt text; '-' reads standard input")->required();
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
