// Shared helpers of the `vila` subcommands. Only the CLI prints errors and exits.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/vila_model.h"

namespace vila::cli {

// Prints "error: <message>" to stderr and returns the process exit code to use (1).
int report_error(const Status& status);

// Loads a model folder, showing progress on stderr when it is a terminal.
StatusOr<std::unique_ptr<VilaModel>> load_model_with_progress(const std::string& dir,
                                                              const std::string& chat_template);

// Reads TEXT, or all of standard input when TEXT is "-".
std::string text_or_stdin(const std::string& text);

// Registers the subcommands; each returns its exit code through `exit_code`.
void add_generate_command(CLI::App& app, int& exit_code);
void add_score_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);

}  // namespace vila::cli
