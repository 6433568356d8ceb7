// vila score: log-likelihood of a continuation as the assistant's answer to a prompt.
#include <cstdio>

#include "cli_common.h"
#include "runtime/generate.h"

namespace vila::cli {

namespace {
struct ScoreArgs {
  std::string model;
  std::vector<std::string> images;
  std::string prompt;
  std::string continuation;
  int64_t ctx_size = 0;
  bool raw = false;
  bool json = false;
  std::string chat_template;
  DeviceArgs device;
};

int run_score(const ScoreArgs& args) {
  const std::string prompt = text_or_stdin(args.prompt);
  auto model_or = load_model_with_progress(args.model, args.chat_template);
  if (!model_or.ok()) return report_error(model_or.status());
  VilaModel& model = **model_or;
  configure_vision(model, args.device);
  auto media = model.build_prompt(prompt, args.images, args.raw);
  if (!media.ok()) return report_error(media.status());
  const std::vector<int32_t> cont_ids = model.tokenizer().encode(args.continuation);
  const auto n_prompt = static_cast<int64_t>(
      media->input.has_embeds()
          ? media->input.embeds.size() / static_cast<size_t>(model.llm().config().hidden)
          : media->input.ids.size());
  auto decoder = make_decoder(model, args.device, n_prompt + static_cast<int64_t>(cont_ids.size()));
  if (!decoder.ok()) return report_error(decoder.status());
  auto result = score_continuation(*decoder->decoder, model.tokenizer(), media->input, cont_ids,
                                   args.ctx_size);
  if (!result.ok()) return report_error(result.status());
  if (args.json) {
    nlohmann::json out = {{"logprob", result->logprob},
                          {"tokens", result->tokens},
                          {"token_ids", result->token_ids},
                          {"token_logprobs", result->token_logprobs},
                          {"prompt_tokens", media->input.ids.size()},
                          {"image_tokens", media->image_tokens}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("logprob: %.6f over %zu tokens\n", result->logprob, result->token_ids.size());
  }
  return 0;
}
}  // namespace

void add_score_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Log-likelihood of --continuation as the assistant's answer to --prompt");
  cmd->add_option("--model", args->model, "Model folder")->required()->envname("VILA_MODEL");
  cmd->add_option("--image", args->images, "Image file(s)");
  cmd->add_option("--prompt", args->prompt, "Prompt text; '-' reads standard input")->required();
  cmd->add_option("--continuation", args->continuation, "The answer to score")->required();
  cmd->add_option("--ctx-size", args->ctx_size, "Context length limit; 0 is the model's")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--chat-template", args->chat_template,
                  "Override the template: qwen2, vicuna_v1, llama_3, none");
  cmd->add_flag("--raw", args->raw, "Use the prompt as is, without the chat template");
  add_device_options(cmd, args->device);
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([args, &exit_code] { exit_code = run_score(*args); });
}

}  // namespace vila::cli
