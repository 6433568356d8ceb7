#include "cli_common.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>

namespace vila::cli {

int report_error(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

StatusOr<std::unique_ptr<VilaModel>> load_model_with_progress(const std::string& dir,
                                                              const std::string& chat_template) {
  VilaModelOptions options;
  options.chat_template = chat_template;
  if (::isatty(STDERR_FILENO)) {
    options.progress = [](const std::string& stage, double fraction) {
      std::fprintf(stderr, "\r\033[Kloading %s: %3.0f%%", stage.c_str(), 100.0 * fraction);
      if (fraction >= 1.0) std::fputc('\n', stderr);
      std::fflush(stderr);
    };
  }
  return VilaModel::load(dir, options);
}

void add_device_options(CLI::App* cmd, DeviceArgs& args) {
  cmd->add_option("--device", args.device, "auto (cuda when a GPU is present), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->envname("VILA_DEVICE");
  cmd->add_option("--dtype", args.dtype, "GPU compute type: bf16 or fp16")
      ->check(CLI::IsMember({"bf16", "fp16"}));
}

bool use_cuda(const DeviceArgs& args) {
  return args.device == "cuda" || (args.device == "auto" && cuda_available());
}

void configure_vision(VilaModel& model, const DeviceArgs& args) {
  model.use_cuda_vision(use_cuda(args), args.dtype == "fp16" ? DType::kF16 : DType::kBF16);
}

StatusOr<DecoderHandle> make_decoder(VilaModel& model, const DeviceArgs& args, int64_t positions) {
  DecoderHandle h;
  if (!use_cuda(args)) {
    h.decoder = std::make_unique<CpuDecoder>(model.llm());
    return h;
  }
  LlmEngineOptions o;
  o.dtype = args.dtype == "fp16" ? DType::kF16 : DType::kBF16;
  o.max_batch = 1;
  o.max_seq = std::max<int64_t>(1, positions);
  o.max_chunk = std::min<int64_t>(o.max_seq, 2048);
  if (::isatty(STDERR_FILENO)) {
    o.progress = [](const std::string& stage, double fraction) {
      std::fprintf(stderr, "\r\033[K%s: %3.0f%%", stage.c_str(), 100.0 * fraction);
      if (fraction >= 1.0) std::fputc('\n', stderr);
      std::fflush(stderr);
    };
  }
  VILA_ASSIGN_OR_RETURN(h.engine, LlmEngine::create(model.llm(), o));
  h.decoder = std::make_unique<CudaDecoder>(*h.engine, model.llm());
  return h;
}

std::string text_or_stdin(const std::string& text) {
  if (text != "-") return text;
  return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
}

}  // namespace vila::cli
