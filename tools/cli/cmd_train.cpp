// vila train --config FILE [--resume] [--output DIR] [--steps N] [--minutes M]
// vila eval --model DIR [--data fashion | FILE.jsonl] [--samples N]
// Training runs the loop of train/trainer.h with a progress bar; eval asks a saved model the
// questions of a set through the inference path (train/eval.h) and prints its accuracy.
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "data/fashion_mnist.h"
#include "train/eval.h"
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
};

int run_train(const TrainArgs& args) {
  auto config = train::load_train_config(args.config);
  if (!config.ok()) return report_error(config.status());
  if (!args.output.empty()) config->output = args.output;
  if (args.steps >= 0) config->steps = args.steps;
  if (args.minutes >= 0) config->minutes = args.minutes;
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
};

int run_eval(const EvalArgs& args) {
  auto model = load_model_with_progress(args.model, "");
  if (!model.ok()) return report_error(model.status());
  train::EvalOptions options;
  options.samples = args.samples;
  options.examples = args.examples;
  options.work_dir = args.work_dir.empty()
                         ? (std::filesystem::temp_directory_path() / "vila_eval_images").string()
                         : args.work_dir;
  StatusOr<train::EvalResult> result = internal_error("eval: not run");
  if (args.data == "fashion") {
    auto test = data::load_fashion_split(data::kFashionMnistDir, "t10k");
    if (!test.ok()) return report_error(test.status());
    result = train::eval_fashion(**model, *test, options);
  } else {
    result = train::eval_conversations(**model, args.data, options);
  }
  if (!result.ok()) return report_error(result.status());
  print_eval(*result, args.data == "fashion" ? "held-out Fashion-MNIST images" : args.data);
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
  cmd->add_option("--stop-after", args->stop_after,
                  "Stop (with a checkpoint) after this many steps of this invocation");
  cmd->callback([args, &exit_code] { exit_code = run_train(*args); });

  auto eargs = std::make_shared<EvalArgs>();
  CLI::App* ecmd = app.add_subcommand("eval", "Accuracy of a saved model on a question set");
  ecmd->add_option("--model", eargs->model, "Model folder")->required();
  ecmd->add_option("--data", eargs->data,
                   "'fashion' (held-out Fashion-MNIST, 'What is this?') or a conversation JSONL "
                   "whose last assistant turn is the expected answer");
  ecmd->add_option("--samples", eargs->samples, "Questions asked")->check(CLI::PositiveNumber);
  ecmd->add_option("--examples", eargs->examples, "Answers printed");
  ecmd->add_option("--work-dir", eargs->work_dir, "Where Fashion-MNIST images are written");
  ecmd->callback([eargs, &exit_code] { exit_code = run_eval(*eargs); });
}

}  // namespace vila::cli
