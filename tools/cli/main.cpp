// vila: command-line front end. Each subcommand lives in its own cmd_*.cpp.
#include <CLI/CLI.hpp>

#include "cli_common.h"
#include "core/logging.h"

namespace vila::cli {
void add_plot_command(CLI::App& app, int& exit_code);   // cmd_plot.cpp
void add_train_command(CLI::App& app, int& exit_code);  // cmd_train.cpp (train, eval)
void add_demo_command(CLI::App& app, int& exit_code);   // cmd_demo.cpp
}  // namespace vila::cli

int main(int argc, char** argv) {
  CLI::App app{"vila.cpp: run VILA / NVILA visual language models"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "debug, info, warn, error")
      ->envname("VILA_LOG_LEVEL")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  int exit_code = 0;
  vila::cli::add_generate_command(app, exit_code);
  vila::cli::add_score_command(app, exit_code);
  vila::cli::add_tokenize_command(app, exit_code);
  vila::cli::add_info_command(app, exit_code);
  vila::cli::add_bench_command(app, exit_code);
  vila::cli::add_tokenizer_command(app, exit_code);
  vila::cli::add_plot_command(app, exit_code);
  vila::cli::add_train_command(app, exit_code);
  vila::cli::add_demo_command(app, exit_code);
  app.parse_complete_callback([&] {
    const vila::LogLevel levels[] = {vila::LogLevel::kDebug, vila::LogLevel::kInfo,
                                     vila::LogLevel::kWarn, vila::LogLevel::kError};
    const char* names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; ++i) {
      if (log_level == names[i]) vila::log_set_level(levels[i]);
    }
  });
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
