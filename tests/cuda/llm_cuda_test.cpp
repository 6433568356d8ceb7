// End to end: CudaLanguageModel against the CPU oracle (LanguageModel) and the transformers
// reference logits, on every tests/fixtures/models/* fixture. Skips cleanly without CUDA or GPU.
//
// Tolerances (fp32 weights): the GPU runs the CPU's op sequence in fp32 with other summation
// orders (cuBLASLt, warp reductions, online softmax), so logits differ by rounding only: measured
// on the fixtures (H100, 2026-11-23) at most 3.5e-5 against the CPU and 2.9e-5 against
// transformers (logits of magnitude ~5-15); asserted at 1e-4 and 2e-4 (the CPU's own bound
// against transformers is 1e-4). Greedy continuations must be identical.
// bf16 weights: asserted only to 5% of the logit range (bf16 has 8 bits of mantissa); measured
// 0.04-0.33 on ranges of 12-16.
#include "model/llm_cuda.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/golden_util.h"
#include "format/safetensors.h"
#include "model/vila_model.h"
#include "runtime/kv_cache.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#endif

#include "cuda_test_util.h"
#include "model_fixture.h"

namespace vila {
namespace {

namespace fs = std::filesystem;

using testing::have_gpu;

int32_t argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

class CudaGolden : public testing::ModelFixtureTest {
 protected:
  std::unique_ptr<CudaLanguageModel> make_cuda(CudaWeightPrecision precision,
                                               int64_t max_chunk = 512) {
    CudaLlmOptions options;
    options.max_seq = 256;
    options.max_chunk = max_chunk;
    options.weights = precision;
    auto gpu = CudaLanguageModel::create(model_->llm(), options);
    EXPECT_TRUE(gpu.ok()) << gpu.status().to_string();
    return gpu.ok() ? std::move(*gpu) : nullptr;
  }
};

TEST_P(CudaGolden, Fp32LogitsMatchCpuAndTransformers) {
  auto logits_file = Checkpoint::open_file(dir_ + "/reference_logits.safetensors");
  ASSERT_TRUE(logits_file.ok()) << logits_file.status().to_string();
  auto gpu = make_cuda(CudaWeightPrecision::kF32);
  ASSERT_NE(gpu, nullptr);
  const int64_t vocab = gpu->config().vocab_size;
  int index = 0;
  for (const auto& prompt : reference_["prompts"]) {
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    const auto n = static_cast<int64_t>(ids.size());
    auto ref = (*logits_file)->get("prompt" + std::to_string(index++), Shape{n, vocab});
    ASSERT_TRUE(ref.ok()) << ref.status().to_string();
    const auto* expected = reinterpret_cast<const float*>((*ref)->data);
    const auto cpu = cpu_logits(ids);
    gpu->reset();
    std::vector<float> logits(static_cast<size_t>(n * vocab), NAN);
    const auto e = embed(ids);
    const Status s = gpu->forward(e.data(), n, logits.data(), n);
    ASSERT_TRUE(s.ok()) << s.to_string();
    const double vs_cpu = golden::max_abs_diff(logits.data(), cpu.data(), n * vocab);
    const double vs_ref = golden::max_abs_diff(logits.data(), expected, n * vocab);
    EXPECT_LE(vs_cpu, 1e-4) << "prompt " << prompt["name"];
    EXPECT_LE(vs_ref, 2e-4) << "prompt " << prompt["name"];
    RecordProperty("max_diff_vs_cpu_" + std::to_string(index), std::to_string(vs_cpu));
    std::printf("[ %s ] prompt %s: n %lld, max |cuda - cpu| %.3g, max |cuda - transformers| %.3g\n",
                GetParam().c_str(), prompt["name"].get<std::string>().c_str(),
                static_cast<long long>(n), vs_cpu, vs_ref);
  }
}

// Chunked prefill (chunks of 3), then the rest one token at a time: the last logits must match a
// single full forward; the cache bookkeeping (length, OutOfRange) must match the CPU's.
TEST_P(CudaGolden, ChunkedPrefillAndDecodeMatchFullForward) {
  auto gpu = make_cuda(CudaWeightPrecision::kF32, /*max_chunk=*/3);
  ASSERT_NE(gpu, nullptr);
  const int64_t vocab = gpu->config().vocab_size, hidden = gpu->config().hidden;
  const auto ids = reference_["prompts"][0]["input_ids"].get<std::vector<int32_t>>();
  const auto n = static_cast<int64_t>(ids.size());
  ASSERT_GE(n, 2);
  const auto cpu = cpu_logits(ids);
  const auto e = embed(ids);
  const int64_t prefix = n / 2 + 1;
  std::vector<float> got(static_cast<size_t>(n * vocab), NAN);
  // Prefix: logits of its last 2 rows only (n_logits < n across chunk boundaries).
  const int64_t tail = std::min<int64_t>(2, prefix);
  ASSERT_TRUE(gpu->forward(e.data(), prefix, got.data() + (prefix - tail) * vocab, tail).ok());
  EXPECT_EQ(gpu->length(), prefix);
  for (int64_t t = prefix; t < n; ++t) {
    ASSERT_TRUE(gpu->forward(e.data() + t * hidden, 1, got.data() + t * vocab, 1).ok());
  }
  EXPECT_EQ(gpu->length(), n);
  const int64_t from = prefix - tail;
  EXPECT_LE(golden::max_abs_diff(got.data() + from * vocab, cpu.data() + from * vocab,
                                 (n - from) * vocab),
            1e-4);
  // Overflow is refused and leaves the cache as it was.
  std::vector<float> big(static_cast<size_t>((gpu->capacity() - n + 1) * hidden), 0.5f);
  EXPECT_EQ(gpu->forward(big.data(), gpu->capacity() - n + 1, nullptr, 0).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(gpu->length(), n);
  ASSERT_TRUE(gpu->truncate(1).ok());
  EXPECT_EQ(gpu->length(), 1);
}

TEST_P(CudaGolden, Fp32GreedyContinuationMatches) {
  auto gpu = make_cuda(CudaWeightPrecision::kF32);
  ASSERT_NE(gpu, nullptr);
  const int64_t vocab = gpu->config().vocab_size;
  for (const auto& prompt : reference_["prompts"]) {
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    const auto expected = prompt["greedy_ids"].get<std::vector<int32_t>>();
    gpu->reset();
    std::vector<float> logits(static_cast<size_t>(vocab));
    auto e = embed(ids);
    ASSERT_TRUE(gpu->forward(e.data(), static_cast<int64_t>(ids.size()), logits.data(), 1).ok());
    std::vector<int32_t> out;
    while (out.size() < expected.size()) {
      out.push_back(argmax(logits.data(), vocab));
      if (out.size() == expected.size()) break;
      e = embed({out.back()});
      ASSERT_TRUE(gpu->forward(e.data(), 1, logits.data(), 1).ok());
    }
    EXPECT_EQ(out, expected) << "prompt " << prompt["name"];
  }
}

TEST_P(CudaGolden, Bf16WeightsStayClose) {
  auto gpu = make_cuda(CudaWeightPrecision::kBF16);
  ASSERT_NE(gpu, nullptr);
  const int64_t vocab = gpu->config().vocab_size;
  for (const auto& prompt : reference_["prompts"]) {
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    const auto n = static_cast<int64_t>(ids.size());
    const auto cpu = cpu_logits(ids);
    gpu->reset();
    std::vector<float> logits(static_cast<size_t>(n * vocab), NAN);
    const auto e = embed(ids);
    ASSERT_TRUE(gpu->forward(e.data(), n, logits.data(), n).ok());
    const auto [lo, hi] = std::minmax_element(cpu.begin(), cpu.end());
    const double diff = golden::max_abs_diff(logits.data(), cpu.data(), n * vocab);
    EXPECT_LE(diff, 0.05 * (*hi - *lo)) << "prompt " << prompt["name"];
    std::printf("[ %s ] bf16 prompt %s: max |cuda - cpu| %.3g (logit range %.3g)\n",
                GetParam().c_str(), prompt["name"].get<std::string>().c_str(), diff,
                static_cast<double>(*hi - *lo));
  }
}

TEST(CudaLanguageModelApi, CreateFailsCleanlyWithoutGpu) {
  if (have_gpu()) GTEST_SKIP() << "a GPU is present";
  const auto names = golden::fixture_names("models");
  ASSERT_FALSE(names.empty());
  auto model = VilaModel::load((fs::path(VILA_FIXTURES_DIR) / "models" / names[0]).string());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto gpu = CudaLanguageModel::create((*model)->llm());
  EXPECT_FALSE(gpu.ok());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaGolden, ::testing::ValuesIn(golden::fixture_names("models")),
                         [](const auto& info) { return golden::param_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaGolden);

}  // namespace
}  // namespace vila
