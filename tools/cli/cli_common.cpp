#include "cli_common.h"

#include <unistd.h>

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

std::string text_or_stdin(const std::string& text) {
  if (text != "-") return text;
  return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
}

}  // namespace vila::cli
