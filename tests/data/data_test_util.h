// Shared helpers of the data tests: fixture paths, the Fashion-MNIST files loaded once per test
// binary, and running the `vila` binary.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "core/mapped_file.h"
#include "data/fashion_mnist.h"

namespace vila::data::testing {

inline std::string fixture(const std::string& name) {
  return std::string(VILA_FIXTURES_DIR) + "/data/" + name;
}

inline std::string repo_root() { return std::string(VILA_FIXTURES_DIR) + "/../.."; }

inline bool fashion_installed() {
  return file_exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
}

// The real dataset, read once (about a second); nullptr when the package is not installed.
inline const FashionMnist* fashion() {
  static const FashionMnist* data = [] {
    if (!fashion_installed()) return static_cast<FashionMnist*>(nullptr);
    auto loaded = load_fashion_mnist();
    EXPECT_TRUE(loaded.ok()) << loaded.status().to_string();
    return loaded.ok() ? new FashionMnist(std::move(loaded).value()) : nullptr;
  }();
  return data;
}

#define VILA_REQUIRE_FASHION()                                                          \
  if (::vila::data::testing::fashion() == nullptr) {                                    \
    GTEST_SKIP() << "Debian package dataset-fashion-mnist is not installed (setup.sh)"; \
  }

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `command` through the shell with stdout / stderr captured in files under `dir`.
inline RunResult run_shell(const std::string& command, const std::string& dir) {
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const int status = std::system((command + " >" + out + " 2>" + err).c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream o(out), e(err);
  r.out.assign(std::istreambuf_iterator<char>(o), {});
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

}  // namespace vila::data::testing
