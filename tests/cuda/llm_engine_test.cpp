// End to end: the 16-bit LlmEngine against the CPU fp32 oracle on every tests/fixtures/models/*
// fixture, plus its own bookkeeping (pages, sequences, batching, graphs). Skips cleanly without
// CUDA or a GPU.
//
// Tolerances: weights and GEMM inputs are rounded to bf16 (8 mantissa bits) or f16, so logits are
// asserted to 5 % of the fixture's logit range (the fp32 mirror is held to 1e-4 in
// llm_cuda_test.cpp). Greedy continuations must equal the fixture's (transformers fp32) ids.
// Paths that do the same arithmetic in another order (chunked prefill, decode vs prefill,
// batched vs alone) are held to 3 % of the range (a 16-bit rounding that flips in one path moves
// logits by ~2 % of the range on the fixtures); graph replay vs direct launches must be exact.
#include "model/llm_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "../common/golden_util.h"
#include "model/vila_model.h"
#include "runtime/decoder.h"
#include "runtime/generate.h"
#include "runtime/generate_batch.h"
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

double range_of(const std::vector<float>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return static_cast<double>(*hi - *lo);
}

class EngineGolden : public testing::ModelFixtureTest {
 protected:
  std::unique_ptr<LlmEngine> make(DType dtype, int64_t max_chunk = 512, bool graphs = true,
                                  int max_batch = 4) {
    LlmEngineOptions o;
    o.dtype = dtype;
    o.max_seq = 200;
    o.max_chunk = max_chunk;
    o.max_batch = max_batch;
    o.cuda_graphs = graphs;
    auto e = LlmEngine::create(model_->llm(), o);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    return e.ok() ? std::move(*e) : nullptr;
  }

  // Greedy continuation of `ids` on the engine: prefill, then decode steps on the GPU.
  std::vector<int32_t> greedy(LlmEngine& engine, const std::vector<int32_t>& ids, size_t count) {
    auto seq = engine.new_sequence();
    EXPECT_TRUE(seq.ok());
    const int64_t vocab = engine.config().vocab_size;
    std::vector<float> logits(static_cast<size_t>(vocab));
    const auto e = embed(ids);
    EXPECT_TRUE(
        engine.prefill(*seq, e.data(), static_cast<int64_t>(ids.size()), logits.data(), 1).ok());
    std::vector<int32_t> out{
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())};
    std::vector<int32_t> next;
    while (out.size() < count) {
      const Status s = engine.decode({*seq}, {out.back()}, SamplingParams{}, out.size(), next);
      EXPECT_TRUE(s.ok()) << s.to_string();
      if (!s.ok()) break;
      out.push_back(next[0]);
    }
    engine.release(*seq);
    return out;
  }
};

TEST_P(EngineGolden, PrefillLogitsCloseToCpu) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    auto engine = make(dtype);
    ASSERT_NE(engine, nullptr);
    const int64_t vocab = engine->config().vocab_size;
    for (const auto& prompt : reference_["prompts"]) {
      const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
      const auto n = static_cast<int64_t>(ids.size());
      const auto cpu = cpu_logits(ids);
      auto seq = engine->new_sequence();
      ASSERT_TRUE(seq.ok());
      std::vector<float> logits(static_cast<size_t>(n * vocab), NAN);
      const auto e = embed(ids);
      const Status s = engine->prefill(*seq, e.data(), n, logits.data(), n);
      ASSERT_TRUE(s.ok()) << s.to_string();
      const double diff = golden::max_abs_diff(logits.data(), cpu.data(), n * vocab);
      EXPECT_LE(diff, 0.05 * range_of(cpu)) << "prompt " << prompt["name"];
      std::printf("[ %s ] %s prompt %s: max |engine - cpu| %.3g (logit range %.3g)\n",
                  GetParam().c_str(), dtype_name(dtype), prompt["name"].get<std::string>().c_str(),
                  diff, range_of(cpu));
      engine->release(*seq);
    }
  }
}

// Greedy ids must equal transformers' fp32 greedy ids at every step whose fp32 top-1 / top-2
// logit margin is larger than twice the engine's measured logit error on that prompt; from the
// first near-tie on, bf16 may legitimately pick the other token (the fixtures are random tiny
// models with flat logits: llama3-plain raw_hard has a margin of 0.0012), so the comparison stops
// there. With bf16 (errors 0.06-0.45 on these flat fixtures) few steps qualify; with f16
// (errors 0.008-0.05) most do: measured on the H100 41, 19, 60, 31 and 49 of 60 steps per
// fixture, all of them identical; at least a quarter of all steps must be compared.
TEST_P(EngineGolden, GreedyContinuationMatchesTransformers) {
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    auto engine = make(dtype);
    ASSERT_NE(engine, nullptr);
    const int64_t vocab = engine->config().vocab_size;
    size_t compared = 0, total = 0;
    for (const auto& prompt : reference_["prompts"]) {
      const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
      const auto expected = prompt["greedy_ids"].get<std::vector<int32_t>>();
      const auto n = static_cast<int64_t>(ids.size());
      std::vector<int32_t> full = ids;
      full.insert(full.end(), expected.begin(), expected.end());
      const auto cpu = cpu_logits(full);  // row n-1+i predicts expected[i]
      // The engine's logit error on the prompt.
      const int seq = *engine->new_sequence();
      std::vector<float> logits(static_cast<size_t>(n * vocab));
      const auto e = embed(ids);
      ASSERT_TRUE(engine->prefill(seq, e.data(), n, logits.data(), n).ok());
      engine->release(seq);
      const double err = golden::max_abs_diff(logits.data(), cpu.data(), n * vocab);
      size_t safe = 0;  // steps before the first near-tie
      for (; safe < expected.size(); ++safe) {
        const float* row = cpu.data() + (n - 1 + static_cast<int64_t>(safe)) * vocab;
        std::vector<float> sorted(row, row + vocab);
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
        ASSERT_EQ(std::max_element(row, row + vocab) - row, expected[safe]) << "CPU oracle";
        if (sorted[0] - sorted[1] < 2 * err) break;
      }
      const auto got = greedy(*engine, ids, expected.size());
      ASSERT_EQ(got.size(), expected.size());
      EXPECT_TRUE(
          std::equal(got.begin(), got.begin() + static_cast<int64_t>(safe), expected.begin()))
          << "prompt " << prompt["name"] << ": first " << safe << " steps must match";
      std::printf("[ %s ] %s prompt %s: greedy compared on %zu of %zu steps (logit error %.3g)\n",
                  GetParam().c_str(), dtype_name(dtype), prompt["name"].get<std::string>().c_str(),
                  safe, expected.size(), err);
      compared += safe;
      total += expected.size();
    }
    if (dtype == DType::kF16) {
      EXPECT_GE(compared * 4, total) << "too few f16 steps compared to mean anything";
    }
  }
}

// Chunks of 3 then token-by-token decode reproduce a single prefill's logits; graphs replay the
// direct launches exactly.
TEST_P(EngineGolden, ChunkedPrefillDecodeAndGraphsAgree) {
  auto full = make(DType::kBF16);
  auto chunked = make(DType::kBF16, /*max_chunk=*/3, /*graphs=*/true);
  auto direct = make(DType::kBF16, /*max_chunk=*/3, /*graphs=*/false);
  ASSERT_TRUE(full && chunked && direct);
  const int64_t vocab = full->config().vocab_size;
  const auto ids = reference_["prompts"][0]["input_ids"].get<std::vector<int32_t>>();
  const auto n = static_cast<int64_t>(ids.size());
  ASSERT_GE(n, 3);
  const auto e = embed(ids);
  std::vector<float> want(static_cast<size_t>(n * vocab));
  const int sf = *full->new_sequence();
  ASSERT_TRUE(full->prefill(sf, e.data(), n, want.data(), n).ok());
  const double tol = 0.03 * range_of(want);

  const int64_t prefix = n / 2 + 1;
  for (LlmEngine* eng : {chunked.get(), direct.get()}) {
    const int s = *eng->new_sequence();
    std::vector<float> got(static_cast<size_t>(vocab));
    ASSERT_TRUE(eng->prefill(s, e.data(), prefix, got.data(), 1).ok());
    EXPECT_LE(golden::max_abs_diff(got.data(), want.data() + (prefix - 1) * vocab, vocab), tol);
    EXPECT_EQ(eng->length(s), prefix);
  }
  std::vector<int32_t> next_a, next_b;
  std::vector<float> la(static_cast<size_t>(vocab)), lb(static_cast<size_t>(vocab));
  for (int64_t t = prefix; t < n; ++t) {
    ASSERT_TRUE(chunked->decode({0}, {ids[t]}, SamplingParams{}, 0, next_a, la.data()).ok());
    ASSERT_TRUE(direct->decode({0}, {ids[t]}, SamplingParams{}, 0, next_b, lb.data()).ok());
    EXPECT_LE(golden::max_abs_diff(la.data(), want.data() + t * vocab, vocab), tol) << t;
    EXPECT_EQ(golden::max_abs_diff(la.data(), lb.data(), vocab), 0.0) << "graph vs direct " << t;
    EXPECT_EQ(next_a, next_b);
  }
  EXPECT_EQ(chunked->length(0), n);
}

// Three prompts decoded together give what each gives alone.
TEST_P(EngineGolden, BatchedDecodeEqualsAlone) {
  auto engine = make(DType::kBF16);
  ASSERT_NE(engine, nullptr);
  const auto& prompts = reference_["prompts"];
  std::vector<std::vector<int32_t>> ids;
  for (size_t i = 0; i < 3; ++i) {
    ids.push_back(prompts[i % prompts.size()]["input_ids"].get<std::vector<int32_t>>());
    if (i >= prompts.size()) ids.back().resize(std::max<size_t>(1, ids.back().size() / 2));
  }
  constexpr size_t kSteps = 6;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : ids) alone.push_back(greedy(*engine, p, kSteps));

  const int64_t vocab = engine->config().vocab_size;
  std::vector<int> seqs;
  std::vector<int32_t> last;
  std::vector<std::vector<int32_t>> together(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    seqs.push_back(*engine->new_sequence());
    std::vector<float> logits(static_cast<size_t>(vocab));
    const auto e = embed(ids[i]);
    ASSERT_TRUE(
        engine->prefill(seqs[i], e.data(), static_cast<int64_t>(ids[i].size()), logits.data(), 1)
            .ok());
    last.push_back(
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    together[i].push_back(last.back());
  }
  std::vector<int32_t> next;
  for (size_t step = 1; step < kSteps; ++step) {
    ASSERT_TRUE(engine->decode(seqs, last, SamplingParams{}, step, next).ok());
    last = next;
    for (size_t i = 0; i < ids.size(); ++i) together[i].push_back(next[i]);
  }
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "prompt " << i;
}

// The library's batched generation equals generate() through CudaDecoder prompt by prompt
// (greedy, so the GPU picks are deterministic; prompts finish at different steps).
TEST_P(EngineGolden, GenerateBatchMatchesSinglePrompts) {
  auto engine = make(DType::kF16);
  ASSERT_NE(engine, nullptr);
  std::vector<PromptInput> prompts;
  for (const auto& prompt : reference_["prompts"]) {
    prompts.push_back({prompt["input_ids"].get<std::vector<int32_t>>(), {}});
  }
  prompts.resize(std::min<size_t>(prompts.size(), 4));
  GenerateOptions options;
  options.max_new_tokens = 10;
  options.stop_ids = {prompts[0].ids.back()};  // some prompts may stop early
  auto batch = generate_batch(*engine, model_->llm(), model_->tokenizer(), prompts, options);
  ASSERT_TRUE(batch.ok()) << batch.status().to_string();
  ASSERT_EQ(batch->size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    CudaDecoder decoder(*engine, model_->llm());
    auto one = generate(decoder, model_->tokenizer(), prompts[i], options);
    ASSERT_TRUE(one.ok()) << one.status().to_string();
    EXPECT_EQ((*batch)[i].output_ids, one->output_ids) << "prompt " << i;
    EXPECT_EQ((*batch)[i].stop_reason, one->stop_reason) << "prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineGolden,
                         ::testing::ValuesIn(golden::fixture_names("models")),
                         [](const auto& info) { return golden::param_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EngineGolden);

LlmConfig tiny_config() {
  LlmConfig c;
  c.hidden = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate = 128;
  c.vocab_size = 300;
  c.qkv_bias = true;
  return c;
}

// Pages, slots and refusals: the pool runs out cleanly, release gives pages back, bad arguments
// are refused before anything runs.
TEST(LlmEngineApi, PagesSlotsAndErrors) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA build or no CUDA device";
  LlmEngineOptions o;
  o.max_seq = 200;
  o.max_batch = 2;
  o.num_pages = 3;  // 192 positions in all
  auto engine = LlmEngine::create_random(tiny_config(), o, 7);
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  LlmEngine& e = **engine;
  const int a = *e.new_sequence();
  const int b = *e.new_sequence();
  EXPECT_EQ(e.new_sequence().status().code(), StatusCode::kResourceExhausted);
  std::vector<float> x(static_cast<size_t>(150 * 64), 0.1f), logits(300);
  ASSERT_TRUE(e.prefill(a, x.data(), 150, logits.data(), 1).ok());  // 3 pages
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(e.prefill(b, x.data(), 10, nullptr, 0).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(e.length(b), 0);
  EXPECT_EQ(e.prefill(a, x.data(), 51, nullptr, 0).code(), StatusCode::kOutOfRange);  // > 200
  e.release(a);
  ASSERT_TRUE(e.prefill(b, x.data(), 10, nullptr, 0).ok());
  std::vector<int32_t> next;
  EXPECT_EQ(e.decode({b}, {300}, SamplingParams{}, 0, next).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.decode({b, b}, {1, 1}, SamplingParams{}, 0, next).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(e.decode({b}, {5}, SamplingParams{}, 0, next).ok());
  ASSERT_EQ(next.size(), 1u);
  EXPECT_GE(next[0], 0);
  EXPECT_LT(next[0], 300);
  EXPECT_EQ(e.length(b), 11);
  // Sampling with a temperature draws valid ids.
  SamplingParams sp;
  sp.temperature = 0.8f;
  sp.top_p = 0.9f;
  ASSERT_TRUE(e.decode({b}, {next[0]}, sp, 1, next).ok());
  EXPECT_LT(next[0], 300);
  ASSERT_TRUE(e.truncate(b, 3).ok());
  EXPECT_EQ(e.length(b), 3);
  EXPECT_GT(e.memory().total(), e.memory().weights);
}

TEST(LlmEngineApi, CreateFailsCleanlyWithoutGpu) {
  if (have_gpu()) GTEST_SKIP() << "a GPU is present";
  auto engine = LlmEngine::create_random(tiny_config(), LlmEngineOptions{}, 1);
  EXPECT_FALSE(engine.ok());
}

}  // namespace
}  // namespace vila
