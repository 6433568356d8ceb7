#include "format/json_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace vila {
namespace {

namespace fs = std::filesystem;

class JsonConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("vila_json_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::create_directories(dir_ + "/llm");
    path_ = dir_ + "/llm/config.json";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  JsonFile load(const std::string& text) {
    std::ofstream(path_) << text;
    auto file = load_json_file(path_);
    EXPECT_TRUE(file.ok()) << file.status().to_string();
    return file.ok() ? *file : JsonFile{};
  }

  std::string dir_;
  std::string path_;
};

constexpr const char* kConfig = R"({
  "num_hidden_layers": 28,
  "model_type": "qwen2",
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "max_position_embeddings": 32768.0,
  "tie_word_embeddings": false,
  "vocab_size": "151936",
  "half": 0.5,
  "huge": 18446744073709551615,
  "negative": -3,
  "sliding_window": null,
  "text_config": {"hidden_size": 3584},
  "layers": [1, 2]
})";

TEST_F(JsonConfigTest, RequiredFields) {
  JsonFile f = load(kConfig);
  EXPECT_EQ(f.path, path_);
  EXPECT_EQ(*json_int(f, f.json, "num_hidden_layers"), 28);
  EXPECT_EQ(*json_int(f, f.json, "negative"), -3);
  EXPECT_EQ(*json_int(f, f.json, "max_position_embeddings"), 32768);  // integral float
  EXPECT_EQ(*json_string(f, f.json, "model_type"), "qwen2");
  EXPECT_DOUBLE_EQ(*json_number(f, f.json, "rms_norm_eps"), 1e-6);
  EXPECT_DOUBLE_EQ(*json_number(f, f.json, "rope_theta"), 1e6);
  EXPECT_DOUBLE_EQ(*json_number(f, f.json, "num_hidden_layers"), 28.0);  // ints are numbers
  EXPECT_EQ(*json_bool(f, f.json, "tie_word_embeddings"), false);
  EXPECT_EQ(*json_int(f, f.json["text_config"], "hidden_size"), 3584);
}

TEST_F(JsonConfigTest, RequiredFieldErrors) {
  JsonFile f = load(kConfig);
  auto missing = json_int(f, f.json, "hidden_size");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(), path_ + ": field 'hidden_size' missing");

  auto wrong = json_int(f, f.json, "vocab_size");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message(),
            path_ + ": field 'vocab_size' must be an integer, got string");

  EXPECT_EQ(json_int(f, f.json, "half").status().message(),
            path_ + ": field 'half' must be an integer, got number 0.5");
  EXPECT_FALSE(json_int(f, f.json, "huge").ok());
  EXPECT_FALSE(json_int(f, f.json, "sliding_window").ok());  // null is not an integer
  EXPECT_FALSE(json_int(f, f.json, "layers").ok());
  EXPECT_EQ(json_number(f, f.json, "model_type").status().message(),
            path_ + ": field 'model_type' must be a number, got string");
  EXPECT_EQ(json_string(f, f.json, "num_hidden_layers").status().message(),
            path_ + ": field 'num_hidden_layers' must be a string, got number 28");
  EXPECT_EQ(json_bool(f, f.json, "half").status().message(),
            path_ + ": field 'half' must be a boolean, got number 0.5");
  EXPECT_EQ(json_string(f, f.json, "absent").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(json_bool(f, f.json, "absent").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(json_number(f, f.json, "absent").status().code(), StatusCode::kInvalidArgument);
  // The object itself has the wrong type.
  auto not_object = json_int(f, f.json["layers"], "x");
  ASSERT_FALSE(not_object.ok());
  EXPECT_NE(not_object.status().message().find(path_), std::string::npos);
}

TEST_F(JsonConfigTest, OptionalFields) {
  JsonFile f = load(kConfig);
  EXPECT_EQ(*json_int_or(f, f.json, "absent", 7), 7);
  EXPECT_EQ(*json_int_or(f, f.json, "sliding_window", 4096), 4096);  // null -> default
  EXPECT_EQ(*json_int_or(f, f.json, "num_hidden_layers", 7), 28);
  EXPECT_DOUBLE_EQ(*json_number_or(f, f.json, "absent", 0.25), 0.25);
  EXPECT_DOUBLE_EQ(*json_number_or(f, f.json, "rms_norm_eps", 0.25), 1e-6);
  EXPECT_EQ(*json_string_or(f, f.json, "absent", "x"), "x");
  EXPECT_EQ(*json_string_or(f, f.json, "model_type", "x"), "qwen2");
  EXPECT_EQ(*json_bool_or(f, f.json, "absent", true), true);
  EXPECT_EQ(*json_bool_or(f, f.json, "tie_word_embeddings", true), false);

  EXPECT_EQ(json_int_or(f, f.json, "vocab_size", 1).status().message(),
            path_ + ": field 'vocab_size' must be an integer, got string");
  EXPECT_FALSE(json_number_or(f, f.json, "model_type", 1.0).ok());
  EXPECT_FALSE(json_string_or(f, f.json, "half", "").ok());
  EXPECT_FALSE(json_bool_or(f, f.json, "model_type", false).ok());
}

TEST_F(JsonConfigTest, LoadErrors) {
  auto missing = load_json_file(dir_ + "/nope.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.json"), std::string::npos);

  std::ofstream(path_) << "{\n  \"a\": 1,\n  \"b\": }";
  auto bad = load_json_file(path_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().rfind(path_ + ": malformed JSON at byte 20: ", 0), 0u)
      << bad.status().message();

  std::ofstream(path_) << "";
  EXPECT_EQ(load_json_file(path_).status().code(), StatusCode::kInvalidArgument);
  std::ofstream(path_) << "{\"a\": \"\xff\"}";
  EXPECT_EQ(load_json_file(path_).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila
