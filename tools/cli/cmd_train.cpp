// vila train --config FILE [--resume] [--output DIR] [--steps N] [--minutes M]
// vila eval --model DIR [--data fashion | fewshot | gcide | brown | text:FILE | FILE.jsonl]
//           [--samples N] [--shots K] [--hint] [--json]
// Training runs the loop of train/trainer.h with a progress bar; eval asks a saved model the
// questions of a set through the inference path (train/eval.h) and prints its accuracy, or
// (train/eval_text.h) its held-out text loss in nats/token (gcide, brown, text:FILE) or its
// few-shot accuracy on held-out interleaved Fashion-MNIST documents (fewshot).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "data/fashion_mnist.h"
#include "train/eval.h"
#include "train/eval_text.h"
#include "train/train_config.h"
#include "train/trainer.h"
#include "train_common.h"

namespace vila::cli {

namespace {

struct TrainArgs {
  std::string config;
  bool resume = false;
  std::string output;
  int64_t steps = -1;
  double minutes = -1;
  int64_t stop_after = 0;
  std::string device;  // empty: the config's
};

int run_train(const TrainArgs& args) {
  auto config = train::load_train_config(args.config);
  if (!config.ok()) return report_error(config.status());
  if (!args.output.empty()) config->output = args.output;
  if (args.steps >= 0) config->steps = args.steps;
  if (args.minutes >= 0) config->minutes = args.minutes;
  if (!args.device.empty()) config->device = args.device;
  if (config->steps == 0 && config->minutes == 0) {
    return report_error(invalid_argument("--steps 0 needs --minutes"));
  }
  TrainConsole console;
  train::TrainerOptions options;
  options.resume = args.resume;
  options.stop_after = args.stop_after;
  auto trainer = train::Trainer::create(*config, options, console.callbacks());
  if (!trainer.ok()) return report_error(trainer.status());
  std::fprintf(stderr, "model: %lld parameters (%lld trainable), stage %s, output %s\n",
               static_cast<long long>((*trainer)->parameter_count()),
               static_cast<long long>((*trainer)->trainable_count()),
               train::train_stage_name(config->stage), config->output.c_str());
  Status s = (*trainer)->run();
  if (console.bar) console.bar->finish();
  if (!s.ok()) return report_error(s);
  auto curves = write_run_curves(config->output);
  if (!curves.ok()) return report_error(curves.status());
  std::printf("trained %lld steps; model: %s\n%s", static_cast<long long>((*trainer)->step()),
              (*trainer)->last_checkpoint().c_str(), curves->c_str());
  return 0;
}

struct EvalArgs {
  std::string model;
  std::string data = "fashion";
  int64_t samples = 500;
  int64_t examples = 4;
  std::string work_dir;
  int shots = 4;
  bool hint = false;
  bool json = false;
  int64_t max_tokens = 512;
  uint64_t seed = 0;
};

bool is_text_source(const std::string& data) {
  return data == "gcide" || data == "brown" || data.rfind("text:", 0) == 0;
}

// Held-out text loss: "text loss: X nats/token", or one JSON object with --json.
int run_text_eval(VilaModel& model, const EvalArgs& args) {
  auto docs = train::held_out_text(args.data, args.samples);
  if (!docs.ok()) return report_error(docs.status());
  auto loss = train::eval_text_loss(model.llm(), model.tokenizer(), *docs, args.max_tokens);
  if (!loss.ok()) return report_error(loss.status());
  if (args.json) {
    const nlohmann::json j = {{"data", args.data},
                              {"text_loss", loss->mean()},
                              {"documents", loss->documents},
                              {"tokens", loss->tokens},
                              {"seconds", loss->seconds}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("text loss: %.4f nats/token (%lld documents, %lld tokens of %s)\n", loss->mean(),
                static_cast<long long>(loss->documents), static_cast<long long>(loss->tokens),
                args.data.c_str());
  }
  return 0;
}

int run_eval(const EvalArgs& args) {
  auto model = load_model_with_progress(args.model, "");
  if (!model.ok()) return report_error(model.status());
  train::EvalOptions options;
  options.samples = args.samples;
  options.examples = args.examples;
  options.work_dir = args.work_dir.empty()
                         ? (std::filesystem::temp_directory_path() / "vila_eval_images").string()
                         : args.work_dir;
  if (is_text_source(args.data)) return run_text_eval(**model, args);
  StatusOr<train::EvalResult> result = internal_error("eval: not run");
  if (args.data == "fewshot") {
    auto test = data::load_fashion_split(data::kFashionMnistDir, "t10k");
    if (!test.ok()) return report_error(test.status());
    train::FewShotOptions fs;
    fs.shots = args.shots;
    fs.include_query_class = args.hint;
    fs.samples = args.samples;
    fs.examples = args.examples;
    fs.work_dir = options.work_dir;
    fs.seed = args.seed;
    result = train::eval_few_shot(**model, *test, fs);
  } else if (args.data == "fashion") {
    auto test = data::load_fashion_split(data::kFashionMnistDir, "t10k");
    if (!test.ok()) return report_error(test.status());
    result = train::eval_fashion(**model, *test, options);
  } else {
    result = train::eval_conversations(**model, args.data, options);
  }
  if (!result.ok()) return report_error(result.status());
  if (args.json) {
    nlohmann::json j = {{"data", args.data},
                        {"accuracy", result->accuracy()},
                        {"correct", result->correct},
                        {"total", result->total},
                        {"seconds", result->seconds}};
    if (args.data == "fewshot") {
      j["shots"] = args.shots;
      j["hint"] = args.hint;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  print_eval(*result, args.data == "fashion"   ? "held-out Fashion-MNIST images"
                      : args.data == "fewshot" ? "held-out few-shot documents"
                                               : args.data);
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train or fine-tune a VLM from a JSON/YAML config");
  cmd->add_option("--config", args->config, "Training config (.json, .yaml)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--resume", args->resume, "Continue from the output folder's latest checkpoint");
  cmd->add_option("--output", args->output, "Run folder (overrides the config's output)");
  cmd->add_option("--steps", args->steps, "Optimizer steps (overrides the config)");
  cmd->add_option("--minutes", args->minutes, "Wall-clock budget (overrides the config)");
  cmd->add_option("--device", args->device, "cpu or cuda (overrides the config)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--stop-after", args->stop_after,
                  "Stop (with a checkpoint) after this many steps of this invocation");
  cmd->callback([args, &exit_code] { exit_code = run_train(*args); });

  auto eargs = std::make_shared<EvalArgs>();
  CLI::App* ecmd = app.add_subcommand("eval", "Accuracy of a saved model on a question set");
  ecmd->add_option("--model", eargs->model, "Model folder")->required();
  ecmd->add_option("--data", eargs->data,
                   "'fashion' (held-out Fashion-MNIST, 'What is this?'), 'fewshot' (held-out "
                   "interleaved few-shot documents, raw prompt), 'gcide' | 'brown' | 'text:FILE' "
                   "(held-out text loss, nats/token) or a conversation JSONL whose last "
                   "assistant turn is the expected answer");
  ecmd->add_option("--samples", eargs->samples, "Questions (or text documents)")
      ->check(CLI::PositiveNumber);
  ecmd->add_option("--shots", eargs->shots, "fewshot: solved examples before the query")
      ->check(CLI::Range(0, 16));
  ecmd->add_flag("--hint", eargs->hint, "fewshot: one example shows the query's class");
  ecmd->add_option("--seed", eargs->seed, "fewshot: seed of the documents");
  ecmd->add_option("--max-tokens", eargs->max_tokens, "text: ids per document at most")
      ->check(CLI::Range(2, 1 << 20));
  ecmd->add_flag("--json", eargs->json, "Print one JSON object");
  ecmd->add_option("--examples", eargs->examples, "Answers printed");
  ecmd->add_option("--work-dir", eargs->work_dir, "Where Fashion-MNIST images are written");
  ecmd->callback([eargs, &exit_code] { exit_code = run_eval(*eargs); });
}

}  // namespace vila::cli
