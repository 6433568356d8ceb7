// End-to-end tests of the `vila` binary: JSON interfaces and bad input (one clear error line and a
// non-zero exit, never a crash).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../common/temp_dir.h"
#include "format/safetensors.h"

namespace vila {
namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunResult run_cli(const std::string& args, const std::string& stdin_text = "") {
  const fs::path dir = fs::temp_directory_path() / ("vila_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in = (dir / "in").string(), out = (dir / "out").string(),
                    err = (dir / "err").string();
  std::ofstream(in) << stdin_text;
  const std::string cmd =
      std::string(VILA_CLI_PATH) + " " + args + " <" + in + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream o(out), e(err);
  r.out.assign(std::istreambuf_iterator<char>(o), {});
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

const std::string kModel = std::string(VILA_FIXTURES_DIR) + "/models/qwen2-plain";
const std::string kNvila = std::string(VILA_FIXTURES_DIR) + "/models/nvila-qwen2-untied";

// A writable copy of a fixture model, removed at the end of the test.
class ModelCopy {
 public:
  explicit ModelCopy(const std::string& src) {
    dir_ = fs::temp_directory_path() /
           ("vila_model_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(dir_);
    fs::copy(src, dir_, fs::copy_options::recursive);
  }
  ~ModelCopy() { fs::remove_all(dir_); }
  std::string path(const std::string& name = "") const { return (dir_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

void expect_clean_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "'" << needle << "' not in: " << r.err;
}

TEST(Cli, GenerateJson) {
  const RunResult r = run_cli("generate --model " + quote(kNvila) +
                              " --prompt 'Hello there' --max-new-tokens 5 "
                              "--json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"text", "token_ids", "prompt_tokens", "timings"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_LE(j["token_ids"].size(), 5u);
  EXPECT_GT(j["prompt_tokens"].get<int>(), 10);  // the chat template is applied
}

// --prompts-file answers every non-empty line, in order, as --prompt would (CPU here; the GPU
// batch path is compared with single prompts in tests/cuda/llm_engine_test.cpp).
TEST(Cli, GeneratePromptsFileMatchesSinglePrompts) {
  const testing::TempDir dir;
  const std::string file = dir.path() + "/prompts.txt";
  {
    std::ofstream f(file);
    f << "Hello there\n\nWhat is two plus two?\n";
  }
  const RunResult batch = run_cli("generate --model " + quote(kNvila) + " --device cpu" +
                                  " --prompts-file " + quote(file) + " --max-new-tokens 5");
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  std::istringstream lines(batch.out);
  std::vector<nlohmann::json> got;
  for (std::string line; std::getline(lines, line);) got.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(got.size(), 2u);
  const char* prompts[] = {"Hello there", "What is two plus two?"};
  for (size_t i = 0; i < 2; ++i) {
    const RunResult one = run_cli("generate --model " + quote(kNvila) + " --device cpu --prompt " +
                                  quote(prompts[i]) + " --max-new-tokens 5 --json");
    ASSERT_EQ(one.exit_code, 0) << one.err;
    EXPECT_EQ(got[i]["token_ids"], nlohmann::json::parse(one.out)["token_ids"]) << prompts[i];
  }
  expect_clean_error(
      run_cli("generate --model " + quote(kNvila) + " --prompts-file /nonexistent/prompts.txt"),
      "/nonexistent/prompts.txt");
}

TEST(Cli, GenerateIsDeterministicWithASeed) {
  const std::string args = "generate --model " + quote(kModel) +
                           " --prompt 'Once upon a time' --max-new-tokens 8 --temperature 0.9 "
                           "--top-p 0.9 --top-k 50 --seed 7 --raw --json";
  const RunResult a = run_cli(args), b = run_cli(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(nlohmann::json::parse(a.out)["token_ids"], nlohmann::json::parse(b.out)["token_ids"]);
}

TEST(Cli, ScoreJson) {
  const RunResult r =
      run_cli("score --model " + quote(kModel) +
              " --prompt 'The capital of France is' --continuation ' Paris' --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto lps = j["token_logprobs"].get<std::vector<double>>();
  ASSERT_FALSE(lps.empty());
  double sum = 0;
  for (double lp : lps) {
    EXPECT_LE(lp, 0.0);
    sum += lp;
  }
  EXPECT_NEAR(j["logprob"].get<double>(), sum, 1e-9);
  EXPECT_EQ(j["tokens"].size(), lps.size());
}

TEST(Cli, TokenizeFromStdin) {
  const RunResult a = run_cli("tokenize --model " + quote(kNvila) + " --text - --json",
                              "<|im_start|>user\nhello world<|im_end|>");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto j = nlohmann::json::parse(a.out);
  EXPECT_EQ(j["ids"].size(), j["pieces"].size());
  EXPECT_EQ(j["pieces"][0], "<|im_start|>");
  const RunResult b = run_cli("tokenize --model " + quote(kNvila) + " --text " +
                              quote("<|im_start|>user\nhello world<|im_end|>") + " --json");
  EXPECT_EQ(nlohmann::json::parse(b.out)["ids"], j["ids"]);
}

TEST(Cli, InfoDescribesTheNvilaLayout) {
  const RunResult r = run_cli("info --model " + quote(kNvila) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["layout"], "nvila");
  EXPECT_EQ(j["llm"]["architecture"], "Qwen2ForCausalLM");
  EXPECT_EQ(j["chat_template"], "qwen2");
  EXPECT_GT(j["vision_tower"]["parameters"].get<int64_t>(), 0);
  EXPECT_GT(j["mm_projector"]["parameters"].get<int64_t>(), 0);
}

TEST(Cli, GenerateWithAnImage) {
  const std::string vision = std::string(VILA_FIXTURES_DIR) + "/vision";
  const RunResult r = run_cli("generate --model " + quote(vision + "/nvila-s2") + " --image " +
                              quote(vision + "/images/boats_640x360.jpg") +
                              " --prompt 'Describe the image.' --max-new-tokens 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["image_tokens"], nlohmann::json::array({3072}));
  EXPECT_GT(j["prompt_tokens"].get<int>(), 3072);
  for (const char* key :
       {"preprocess_ms", "vision_ms", "projector_ms", "prefill_ms", "decode_ms"}) {
    EXPECT_TRUE(j["timings"].contains(key)) << key;
  }
}

TEST(CliBadInput, ImageOverThePixelLimit) {
  const std::string vision = std::string(VILA_FIXTURES_DIR) + "/vision";
  expect_clean_error(
      run_cli("generate --model " + quote(vision + "/nvila-s2") + " --image " +
              quote(vision + "/images/boats_640x360.jpg") + " --max-image-pixels 1000 --prompt hi"),
      "boats_640x360.jpg");
}

TEST(CliBadInput, MissingModelFolder) {
  expect_clean_error(run_cli("generate --model /nonexistent/model --prompt hi"),
                     "/nonexistent/model");
}

TEST(CliBadInput, TruncatedSafetensors) {
  ModelCopy m(kModel);
  const std::string file = m.path("model.safetensors");
  fs::resize_file(file, fs::file_size(file) / 2);
  expect_clean_error(run_cli("generate --model " + quote(m.path()) + " --prompt hi"),
                     "model.safetensors");
}

TEST(CliBadInput, HeaderLengthPastTheEnd) {
  ModelCopy m(kModel);
  std::fstream f(m.path("model.safetensors"), std::ios::in | std::ios::out | std::ios::binary);
  const uint64_t huge = uint64_t{1} << 40;
  f.write(reinterpret_cast<const char*>(&huge), sizeof(huge));
  f.close();
  expect_clean_error(run_cli("info --model " + quote(m.path())), "model.safetensors");
}

TEST(CliBadInput, BadJsonHeader) {
  ModelCopy m(kModel);
  std::fstream f(m.path("model.safetensors"), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(8);
  f.write("!!!!", 4);
  f.close();
  expect_clean_error(run_cli("info --model " + quote(m.path())), "model.safetensors");
}

// Rewrites model.safetensors through `edit`, which may drop or replace tensors.
void rewrite_checkpoint(
    const std::string& path,
    const std::function<void(const SafetensorsEntry&, SafetensorsWriter&)>& edit) {
  SafetensorsWriter writer;
  {
    auto file = SafetensorsFile::open(path);
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    for (const auto& [name, entry] : (*file)->entries()) edit(entry, writer);
  }
  ASSERT_TRUE(writer.write(path).ok());
}

TEST(CliBadInput, MissingTensor) {
  ModelCopy m(kModel);
  rewrite_checkpoint(m.path("model.safetensors"), [](const SafetensorsEntry& e, auto& w) {
    if (e.name != "model.norm.weight") {
      ASSERT_TRUE(w.add(e.name, e.dtype, e.shape, e.data, e.nbytes).ok());
    }
  });
  expect_clean_error(run_cli("info --model " + quote(m.path())), "model.norm.weight");
}

TEST(CliBadInput, WrongTensorShape) {
  ModelCopy m(kModel);
  rewrite_checkpoint(m.path("model.safetensors"), [](const SafetensorsEntry& e, auto& w) {
    if (e.name == "model.norm.weight") {
      std::vector<float> longer(static_cast<size_t>(e.shape.numel() + 1), 1.0f);
      ASSERT_TRUE(w.add(e.name, DType::kF32, Shape{e.shape.numel() + 1}, longer.data(),
                        longer.size() * sizeof(float))
                      .ok());
    } else {
      ASSERT_TRUE(w.add(e.name, e.dtype, e.shape, e.data, e.nbytes).ok());
    }
  });
  expect_clean_error(run_cli("info --model " + quote(m.path())), "model.norm.weight");
}

TEST(CliBadInput, UnknownArchitecture) {
  ModelCopy m(kModel);
  std::ifstream in(m.path("config.json"));
  auto config = nlohmann::json::parse(in);
  in.close();
  config["architectures"] = {"FooForCausalLM"};
  config["model_type"] = "foo";
  std::ofstream(m.path("config.json")) << config.dump();
  expect_clean_error(run_cli("info --model " + quote(m.path())), "FooForCausalLM");
}

TEST(CliBadInput, MalformedConfigJson) {
  ModelCopy m(kModel);
  std::ofstream(m.path("config.json")) << "{\"hidden_size\": 64,";
  expect_clean_error(run_cli("info --model " + quote(m.path())), "config.json");
}

TEST(CliBadInput, PromptLongerThanTheContext) {
  std::string prompt;
  for (int i = 0; i < 50; ++i) prompt += "word ";
  expect_clean_error(run_cli("generate --model " + quote(kModel) +
                             " --raw --ctx-size 16 --prompt " + quote(prompt)),
                     "context");
}

TEST(CliBadInput, MissingImageFile) {
  expect_clean_error(run_cli("generate --model " + quote(kNvila) +
                             " --image /nonexistent/cat.jpg --prompt 'What is this?'"),
                     "/nonexistent/cat.jpg");
}

TEST(CliBadInput, MarkerAndImageCountMismatch) {
  expect_clean_error(run_cli("generate --model " + quote(kNvila) +
                             " --image /nonexistent/cat.jpg --prompt '<image> and <image>?'"),
                     "2 <image> marker(s) but 1 --image file(s)");
  expect_clean_error(run_cli("generate --model " + quote(kNvila) + " --prompt 'Look: <image>'"),
                     "1 <image> marker(s) but 0 --image file(s)");
}

TEST(CliBadInput, ImagesWithATextOnlyModel) {
  expect_clean_error(run_cli("generate --model " + quote(kModel) +
                             " --image /nonexistent/cat.jpg --prompt 'What is this?'"),
                     "text-only model");
}

}  // namespace
}  // namespace vila
