// vila tokenize: token ids exactly as the model's tokenizer gives them (nothing added).
#include <cstdio>

#include "cli_common.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace vila::cli {

namespace {
struct TokenizeArgs {
  std::string model;
  std::string text;
  bool json = false;
};

// The folder holding the tokenizer: llm/ of an NVILA checkpoint, else the folder itself.
std::string tokenizer_dir(const std::string& model) {
  const std::string llm = path_join(model, "llm");
  for (const char* name : {"tokenizer.json", "vocab.json", "tokenizer.model"}) {
    if (file_exists(path_join(llm, name))) return llm;
  }
  return model;
}

int run_tokenize(const TokenizeArgs& args) {
  if (!file_exists(args.model)) return report_error(not_found(args.model + ": no such folder"));
  auto tokenizer = Tokenizer::load_dir(tokenizer_dir(args.model));
  if (!tokenizer.ok()) return report_error(tokenizer.status());
  const std::string text = text_or_stdin(args.text);
  const std::vector<int32_t> ids = (*tokenizer)->encode(text);
  if (args.json) {
    std::vector<std::string> pieces;
    pieces.reserve(ids.size());
    for (int32_t id : ids) pieces.push_back((*tokenizer)->id_to_piece(id));
    nlohmann::json out = {{"ids", ids}, {"pieces", pieces}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
  }
  return 0;
}
}  // namespace

void add_tokenize_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("--model", args->model, "Model folder")->required()->envname("VILA_MODEL");
  cmd->add_option("--text", args->text, "Text; '-' reads standard input")->required();
  cmd->add_flag("--json", args->json, "Print {\"ids\": [...], \"pieces\": [...]}");
  cmd->callback([args, &exit_code] { exit_code = run_tokenize(*args); });
}

}  // namespace vila::cli
