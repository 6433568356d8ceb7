// vila demo [--output DIR] [--minutes N] [--device cpu|cuda]: trains a tiny VLM on Fashion-MNIST
// from scratch within the time budget, then asks it about held-out images through the inference
// path and prints `accuracy: NN.N %`, a few answers, the checkpoint and the loss curve.
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "data/fashion_mnist.h"
#include "model/vila_model.h"
#include "train/demo.h"
#include "train/eval.h"
#include "train/trainer.h"
#include "train_common.h"

namespace vila::cli {

namespace {

int run_demo(const train::DemoOptions& options) {
  const train::TrainConfig config = train::demo_config(options);
  std::fprintf(stderr,
               "demo: training a tiny VLM on Fashion-MNIST for %.1f min on the %s, output %s\n",
               options.minutes, options.device.c_str(), options.output.c_str());
  TrainConsole console;
  auto trainer = train::Trainer::create(config, {}, console.callbacks());
  if (!trainer.ok()) return report_error(trainer.status());
  std::fprintf(stderr, "model: %lld parameters\n",
               static_cast<long long>((*trainer)->parameter_count()));
  Status s = (*trainer)->run();
  if (console.bar) console.bar->finish();
  if (!s.ok()) return report_error(s);
  auto curves = write_run_curves(config.output);
  if (!curves.ok()) return report_error(curves.status());

  const std::string model_dir = (*trainer)->last_checkpoint();
  auto model = VilaModel::load(model_dir);
  if (!model.ok()) return report_error(model.status());
  auto test = data::load_fashion_split(data::kFashionMnistDir, "t10k");
  if (!test.ok()) return report_error(test.status());
  train::EvalOptions eo;
  eo.samples = options.eval_samples;
  eo.examples = 6;
  eo.work_dir = (std::filesystem::path(config.output) / "eval_images").string();
  std::fprintf(stderr, "asking the model about %lld held-out images...\n",
               static_cast<long long>(eo.samples));
  auto result = train::eval_fashion(**model, *test, eo);
  if (!result.ok()) return report_error(result.status());
  std::printf("\nWhat is this? (held-out images the model never saw)\n");
  print_eval(*result, "held-out Fashion-MNIST images");
  std::printf("model: %s  (try: vila generate --model %s --image %s --prompt \"What is this?\")\n",
              model_dir.c_str(), model_dir.c_str(),
              result->examples.empty() ? "IMAGE" : result->examples[0].image.c_str());
  std::printf("curves:\n%s", curves->c_str());
  return 0;
}

}  // namespace

void add_demo_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<train::DemoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "Train a tiny VLM on Fashion-MNIST in a few minutes and test it on unseen images");
  cmd->add_option("--output", options->output, "Run folder")->capture_default_str();
  cmd->add_option("--minutes", options->minutes, "Training budget")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 1e4));
  cmd->add_option("--device", options->device, "cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--eval-samples", options->eval_samples, "Held-out images asked")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", options->seed, "Seed of data order and init")->capture_default_str();
  cmd->callback([options, &exit_code] { exit_code = run_demo(*options); });
}

}  // namespace vila::cli
