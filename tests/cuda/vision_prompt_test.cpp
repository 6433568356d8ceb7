// The GPU vision encoder in the prompt path (VilaModel::use_cuda_vision, `vila generate --device
// cuda`), on every case of the three vision fixtures:
//  - build_prompt rows with the GPU encoder vs the CPU encoder: the same ids and layout, the text
//    rows identical, the image rows within the 16-bit tolerance of the encoder tests (bf16 4e-2,
//    f16 8e-3 of each item's value range);
//  - greedy generation through the CLI (GPU vision + GPU engine vs CPU): the first generated token
//    equal wherever the fixture's top-1/top-2 margin is clear of the 16-bit error.
// Skips cleanly without CUDA or a GPU. The CLI binary is $VILA_CLI or the build's vila.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../common/golden_util.h"
#include "core/dtype.h"
#include "cuda_test_util.h"
#include "model/vila_model.h"

namespace vila {
namespace {

namespace fs = std::filesystem;

constexpr double kBf16Tolerance = 4e-2, kF16Tolerance = 8e-3;  // as vision_cuda_test.cpp
constexpr double kClearMargin = 0.1;  // top-1 minus top-2 logit that 16-bit error cannot flip
constexpr int kNewTokens = 4;

fs::path vision_root() { return fs::path(VILA_FIXTURES_DIR) / "vision"; }

std::vector<std::string> case_images(const nlohmann::json& c) {
  std::vector<std::string> paths;
  for (const auto& p : c["images"])
    paths.push_back((vision_root() / p.get<std::string>()).string());
  return paths;
}

// max |got - ref| / max |ref| over rows [first, first + n) of width `hidden`.
double range_error(const std::vector<float>& got, const std::vector<float>& ref, int64_t first,
                   int64_t n, int64_t hidden) {
  const size_t begin = static_cast<size_t>(first * hidden), count = static_cast<size_t>(n * hidden);
  double range = 0, worst = 0;
  for (size_t i = begin; i < begin + count; ++i) {
    range = std::max(range, std::fabs(static_cast<double>(ref[i])));
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst / std::max(range, 1e-30);
}

void check_prompts(DType dtype, double tolerance) {
  const auto names = golden::fixture_names("vision");
  ASSERT_EQ(names.size(), 3u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string dir = (vision_root() / name).string();
    auto model = VilaModel::load(dir);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    std::ifstream in(dir + "/reference.json");
    const auto reference = nlohmann::json::parse(in);
    const int64_t hidden = (*model)->llm().config().hidden;
    double worst = 0;
    for (const auto& c : reference["cases"]) {
      SCOPED_TRACE(c["name"].get<std::string>());
      (*model)->use_cuda_vision(false);
      auto cpu = (*model)->build_prompt(c["prompt"], case_images(c), false);
      ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
      (*model)->use_cuda_vision(true, dtype);
      auto gpu = (*model)->build_prompt(c["prompt"], case_images(c), false);
      ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
      EXPECT_EQ(cpu->vision_device, "cpu");
      EXPECT_EQ(gpu->vision_device, "cuda");
      ASSERT_EQ(gpu->input.ids, cpu->input.ids);
      ASSERT_EQ(gpu->media_rows, cpu->media_rows);
      ASSERT_EQ(gpu->image_tokens, cpu->image_tokens);
      ASSERT_EQ(gpu->input.embeds.size(), cpu->input.embeds.size());
      // Text rows: the same embedding lookups, bit for bit.
      std::vector<bool> is_media(cpu->input.embeds.size() / static_cast<size_t>(hidden), false);
      for (const auto& [first, n] : cpu->media_rows) {
        std::fill(is_media.begin() + first, is_media.begin() + first + n, true);
        const double err = range_error(gpu->input.embeds, cpu->input.embeds, first, n, hidden);
        EXPECT_LE(err, tolerance) << "media rows at " << first;
        worst = std::max(worst, err);
      }
      int64_t text_mismatches = 0;
      for (size_t r = 0; r < is_media.size(); ++r) {
        if (is_media[r]) continue;
        for (int64_t j = 0; j < hidden; ++j) {
          const size_t i = r * static_cast<size_t>(hidden) + static_cast<size_t>(j);
          text_mismatches += gpu->input.embeds[i] != cpu->input.embeds[i];
        }
      }
      EXPECT_EQ(text_mismatches, 0);
    }
    std::printf("[vision prompt %s %s] media rows max |gpu - cpu| / max |cpu| %.3e\n",
                dtype_name(dtype), name.c_str(), worst);
  }
}

TEST(CudaVisionPrompt, BuildPromptMatchesCpuBf16) {
  VILA_SKIP_WITHOUT_GPU();
  check_prompts(DType::kBF16, kBf16Tolerance);
}

TEST(CudaVisionPrompt, BuildPromptMatchesCpuF16) {
  VILA_SKIP_WITHOUT_GPU();
  check_prompts(DType::kF16, kF16Tolerance);
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// Token ids of `vila generate ... --json`, or an empty list (with a test failure) on error.
std::vector<int32_t> cli_greedy(const std::string& cli, const std::string& dir,
                                const nlohmann::json& c, const std::string& device_args) {
  std::string cmd = quote(cli) + " generate --model " + quote(dir) + " --prompt " +
                    quote(c["prompt"].get<std::string>()) + " --max-new-tokens " +
                    std::to_string(kNewTokens) + " --json " + device_args;
  for (const std::string& image : case_images(c)) cmd += " --image " + quote(image);
  cmd += " 2>/dev/null";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << cmd;
    return {};
  }
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  const int rc = ::pclose(pipe);
  if (rc != 0) {
    ADD_FAILURE() << cmd << " exited with " << rc;
    return {};
  }
  const auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("token_ids")) {
    ADD_FAILURE() << cmd << " printed no JSON token_ids: " << out;
    return {};
  }
  if (device_args.find("cuda") != std::string::npos) {
    EXPECT_EQ(j.value("vision_device", ""), "cuda") << cmd;
  }
  return j["token_ids"].get<std::vector<int32_t>>();
}

TEST(CudaVisionPrompt, CliGreedyMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
  const char* env = std::getenv("VILA_CLI");
  const std::string cli = env != nullptr ? env : VILA_CLI_PATH;
  if (!fs::exists(cli)) GTEST_SKIP() << "no vila binary at " << cli << " (set VILA_CLI)";
  for (const std::string& name : golden::fixture_names("vision")) {
    const std::string dir = (vision_root() / name).string();
    std::ifstream in(dir + "/reference.json");
    const auto reference = nlohmann::json::parse(in);
    for (const auto& c : reference["cases"]) {
      SCOPED_TRACE(name + " " + c["name"].get<std::string>());
      const auto& top = c["last_top5"];
      const double margin = top[0][1].get<double>() - top[1][1].get<double>();
      const auto cpu = cli_greedy(cli, dir, c, "--device cpu");
      ASSERT_FALSE(cpu.empty());
      EXPECT_EQ(cpu.front(), c["greedy_ids"][0].get<int32_t>());  // the CPU is the oracle
      for (const char* dtype : {"fp16", "bf16"}) {
        const auto gpu = cli_greedy(cli, dir, c, std::string("--device cuda --dtype ") + dtype);
        ASSERT_FALSE(gpu.empty());
        size_t same = 0;
        while (same < std::min(gpu.size(), cpu.size()) && gpu[same] == cpu[same]) ++same;
        std::printf("[vision cli %s %s %s] first-token margin %.4f, %zu of %zu greedy ids equal\n",
                    name.c_str(), c["name"].get<std::string>().c_str(), dtype, margin, same,
                    cpu.size());
        if (margin > kClearMargin) {
          EXPECT_GE(same, 1u) << dtype;
        }
      }
    }
  }
}

}  // namespace
}  // namespace vila
