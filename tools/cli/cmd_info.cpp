// vila info: what a checkpoint folder holds.
#include <cstdio>

#include "cli_common.h"

namespace vila::cli {

namespace {
struct InfoArgs {
  std::string model;
  bool json = false;
};

int run_info(const InfoArgs& args) {
  auto model_or = load_model_with_progress(args.model, "");
  if (!model_or.ok()) return report_error(model_or.status());
  const VilaModel& model = **model_or;
  const LlmConfig& c = model.llm().config();
  nlohmann::json out = {
      {"layout", checkpoint_layout_name(model.layout())},
      {"llm",
       {{"dir", model.llm_dir()},
        {"architecture", c.arch_name},
        {"parameters", model.llm().parameter_count()},
        {"dtype", dtype_name(c.weight_dtype)},
        {"hidden_size", c.hidden},
        {"layers", c.n_layers},
        {"heads", c.n_heads},
        {"kv_heads", c.n_kv_heads},
        {"head_dim", c.head_dim},
        {"intermediate_size", c.intermediate},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position},
        {"rope_theta", c.rope_theta},
        {"rms_norm_eps", c.rms_eps},
        {"tied_embeddings", c.tie_embeddings}}},
      {"tokenizer",
       {{"kind", model.tokenizer().kind() == TokenizerKind::kSentencePiece ? "sentencepiece"
                                                                           : "byte_level_bpe"},
        {"tokens", model.tokenizer().n_tokens()}}},
      {"chat_template", chat_template_name(model.chat_template().kind)},
      {"stop_token_ids", model.stop_ids()},
  };
  if (model.image_token_id()) out["image_token_id"] = *model.image_token_id();
  for (const auto& [key, sub] :
       {std::pair{"vision_tower", model.vision_tower()}, {"mm_projector", model.mm_projector()}}) {
    if (sub) {
      out[key] = {{"dir", sub->dir},
                  {"type", sub->type},
                  {"parameters", sub->parameters},
                  {"dtype", sub->dtype}};
    }
  }
  if (args.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("layout:         %s\n", checkpoint_layout_name(model.layout()));
  std::printf("architecture:   %s (%s)\n", c.arch_name.c_str(), model.llm_dir().c_str());
  std::printf("parameters:     %lld (llm, %s)\n",
              static_cast<long long>(model.llm().parameter_count()), dtype_name(c.weight_dtype));
  std::printf(
      "geometry:       hidden %lld, layers %lld, heads %lld/%lld kv, head_dim %lld, "
      "ffn %lld\n",
      static_cast<long long>(c.hidden), static_cast<long long>(c.n_layers),
      static_cast<long long>(c.n_heads), static_cast<long long>(c.n_kv_heads),
      static_cast<long long>(c.head_dim), static_cast<long long>(c.intermediate));
  std::printf("vocabulary:     %lld (tokenizer: %d tokens)\n", static_cast<long long>(c.vocab_size),
              model.tokenizer().n_tokens());
  std::printf("context:        %lld, rope_theta %g, rms_eps %g, tied head: %s\n",
              static_cast<long long>(c.max_position), c.rope_theta, c.rms_eps,
              c.tie_embeddings ? "yes" : "no");
  std::printf("chat template:  %s\n", chat_template_name(model.chat_template().kind));
  for (const char* key : {"vision_tower", "mm_projector"}) {
    if (out.contains(key)) {
      const auto& sub = out[key];
      std::printf("%-15s %s, %lld parameters (%s)\n", (std::string(key) + ":").c_str(),
                  sub["type"].get<std::string>().c_str(), sub["parameters"].get<long long>(),
                  sub["dtype"].get<std::string>().c_str());
    }
  }
  return 0;
}
}  // namespace

void add_info_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model folder");
  cmd->add_option("--model", args->model, "Model folder")->required()->envname("VILA_MODEL");
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([args, &exit_code] { exit_code = run_info(*args); });
}

}  // namespace vila::cli
