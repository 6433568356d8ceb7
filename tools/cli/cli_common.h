// Shared helpers of the `vila` subcommands. Only the CLI prints errors and exits.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/llm_engine.h"
#include "model/vila_model.h"
#include "runtime/decoder.h"

namespace vila::cli {

// Prints "error: <message>" to stderr and returns the process exit code to use (1).
int report_error(const Status& status);

// Loads a model folder, showing progress on stderr when it is a terminal.
StatusOr<std::unique_ptr<VilaModel>> load_model_with_progress(const std::string& dir,
                                                              const std::string& chat_template);

// The backend a command runs the LLM on: --device (auto, cpu, cuda) and --dtype (bf16, fp16; the
// GPU engine's compute type).
struct DeviceArgs {
  std::string device = "auto";
  std::string dtype = "bf16";
};
void add_device_options(CLI::App* cmd, DeviceArgs& args);

// Whether --device resolves to the GPU: "cuda", or "auto" in a CUDA build with a GPU present.
bool use_cuda(const DeviceArgs& args);

// Runs the model's vision tower and projector on the GPU (in --dtype) when --device resolves to
// cuda, so that images go through the GPU encoder in build_prompt; on the CPU otherwise.
void configure_vision(VilaModel& model, const DeviceArgs& args);

// A Decoder for `model` on the chosen device, with room for `positions` positions. "auto" is cuda
// when vila.cpp was built with CUDA and a GPU is present, else cpu. Owns the GPU engine if any.
struct DecoderHandle {
  std::unique_ptr<LlmEngine> engine;
  std::unique_ptr<Decoder> decoder;
};
StatusOr<DecoderHandle> make_decoder(VilaModel& model, const DeviceArgs& args, int64_t positions);

// Reads TEXT, or all of standard input when TEXT is "-".
std::string text_or_stdin(const std::string& text);

// Registers the subcommands; each returns its exit code through `exit_code`.
void add_generate_command(CLI::App& app, int& exit_code);
void add_score_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_info_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_tokenizer_command(CLI::App& app, int& exit_code);

}  // namespace vila::cli
