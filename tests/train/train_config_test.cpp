// TrainConfig: JSON and YAML spell the same run, every bad field is named, stage presets say
// which modules train.
#include "train/train_config.h"

#include <gtest/gtest.h>

#include "../common/temp_dir.h"

namespace vila::train {
namespace {

using nlohmann::json;

json minimal() { return json{{"steps", 10}, {"data", {{"fashion", {{"caption", 100}}}}}}; }

TEST(TrainConfig, DefaultsFromMinimalConfig) {
  auto c = train_config_from_json(minimal(), "run.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->steps, 10);
  EXPECT_EQ(c->fashion_caption, 100);
  EXPECT_EQ(c->stage, TrainStage::kSft);
  EXPECT_EQ(c->precision, "fp32");
  EXPECT_EQ(c->schedule, "cosine");
  EXPECT_FALSE(c->deterministic);
  json j = minimal();
  j["deterministic"] = true;
  auto d = train_config_from_json(j, "run.json");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_TRUE(d->deterministic);
  EXPECT_TRUE(d->to_json()["deterministic"].get<bool>());
}

TEST(TrainConfig, YamlEqualsJson) {
  testing::TempDir dir;
  dir.write("run.yaml",
            "# a comment\n"
            "model: {preset: tiny}\n"
            "data:\n"
            "  fashion: {caption: 200, few_shot: 20}\n"
            "  text: gcide\n"
            "  text_samples: 50\n"
            "stage: pretrain\n"
            "freeze: [llm]\n"
            "optimizer: {lr: 3.0e-4, weight_decay: 0.1, state_format: i8_block}\n"
            "schedule: {name: linear, warmup_ratio: 0.1}\n"
            "steps: 40\n"
            "batch_tokens: 256\n"
            "output: \"runs/x\"\n");
  dir.write("run.json", R"({"model": {"preset": "tiny"},
    "data": {"fashion": {"caption": 200, "few_shot": 20}, "text": "gcide", "text_samples": 50},
    "stage": "pretrain", "freeze": ["llm"],
    "optimizer": {"lr": 3.0e-4, "weight_decay": 0.1, "state_format": "i8_block"},
    "schedule": {"name": "linear", "warmup_ratio": 0.1},
    "steps": 40, "batch_tokens": 256, "output": "runs/x"})");
  auto y = load_train_config(dir.file("run.yaml"));
  auto j = load_train_config(dir.file("run.json"));
  ASSERT_TRUE(y.ok()) << y.status().message();
  ASSERT_TRUE(j.ok()) << j.status().message();
  EXPECT_EQ(y->to_json(), j->to_json());
  EXPECT_DOUBLE_EQ(y->lr, 3.0e-4);
  auto modules = y->trainable_modules();
  ASSERT_TRUE(modules.ok());
  // pretrain = projector + LLM; freeze llm leaves the projector.
  EXPECT_FALSE((*modules)[static_cast<int>(ParamModule::kLlm)]);
  EXPECT_TRUE((*modules)[static_cast<int>(ParamModule::kProjector)]);
  EXPECT_FALSE((*modules)[static_cast<int>(ParamModule::kVisionTower)]);
}

TEST(TrainConfig, StagePresets) {
  auto align = stage_modules(TrainStage::kAlign);
  EXPECT_FALSE(align[static_cast<int>(ParamModule::kVisionTower)]);
  EXPECT_TRUE(align[static_cast<int>(ParamModule::kProjector)]);
  EXPECT_FALSE(align[static_cast<int>(ParamModule::kLlm)]);
  auto pretrain = stage_modules(TrainStage::kPretrain);
  EXPECT_FALSE(pretrain[static_cast<int>(ParamModule::kVisionTower)]);
  EXPECT_TRUE(pretrain[static_cast<int>(ParamModule::kLlm)]);
  auto sft = stage_modules(TrainStage::kSft);
  EXPECT_TRUE(sft[static_cast<int>(ParamModule::kVisionTower)]);
  EXPECT_TRUE(sft[static_cast<int>(ParamModule::kProjector)]);
  EXPECT_TRUE(sft[static_cast<int>(ParamModule::kLlm)]);
}

// Each bad config gives an error naming the field.
TEST(TrainConfig, BadFieldsAreNamed) {
  struct Case {
    json patch;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{{"optimizer", {{"lr", -1}}}}, "optimizer.lr"},
      {{{"optimizer", {{"lr", "fast"}}}}, "optimizer.lr"},
      {{{"optimizer", {{"momentum", 0.9}}}}, "optimizer.momentum: unknown field"},
      {{{"stage", "finetune"}}, "stage"},
      {{{"freeze", {"decoder"}}}, "freeze"},
      {{{"schedule", {{"name", "step"}}}}, "schedule.name"},
      {{{"batch_tokens", 3}}, "batch_tokens"},
      {{{"precision", "fp8"}}, "precision"},
      {{{"deterministic", "yes"}}, "deterministic: must be true or false"},
      {{{"stepz", 3}}, "stepz: unknown field"},
      {{{"data", {{"jsonl", {{{"format", "llava"}}}}}}}, "data.jsonl[0].path"},
      {{{"data", {{"fashion", {{"caption", -5}}}}}}, "data.fashion.caption"},
      {{{"stage", "align"}, {"freeze", {"mm_projector"}}}, "every module is frozen"},
  };
  for (const Case& c : cases) {
    json j = minimal();
    j.merge_patch(c.patch);
    auto r = train_config_from_json(j, "run.json");
    ASSERT_FALSE(r.ok()) << c.patch.dump();
    EXPECT_NE(r.status().message().find("run.json"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.patch.dump() << " -> " << r.status().message();
  }
}

TEST(TrainConfig, NoDataOrNoLengthIsAnError) {
  auto no_data = train_config_from_json(json{{"steps", 3}}, "a.json");
  ASSERT_FALSE(no_data.ok());
  EXPECT_NE(no_data.status().message().find("no source"), std::string::npos);
  json j = minimal();
  j.erase("steps");
  auto no_len = train_config_from_json(j, "a.json");
  ASSERT_FALSE(no_len.ok());
  EXPECT_NE(no_len.status().message().find("steps or minutes"), std::string::npos);
}

TEST(TrainConfig, MalformedFilesNameTheFile) {
  testing::TempDir dir;
  dir.write("bad.yaml", "data: {fashion: [1, 2\n");
  dir.write("bad.json", "{\"steps\": 3,");
  auto y = load_train_config(dir.file("bad.yaml"));
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.status().message().find("bad.yaml"), std::string::npos) << y.status().message();
  auto j = load_train_config(dir.file("bad.json"));
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("bad.json"), std::string::npos);
  auto missing = load_train_config(dir.file("none.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("none.json"), std::string::npos);
}

TEST(TrainConfig, YamlScalarsAreTyped) {
  auto j = yaml_to_json("a: 3\nb: 2.5e-3\nc: true\nd: \"7\"\ne: ~\nf: text\n", "x.yaml");
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)["a"].is_number_integer());
  EXPECT_TRUE((*j)["b"].is_number_float());
  EXPECT_TRUE((*j)["c"].is_boolean());
  EXPECT_TRUE((*j)["d"].is_string());
  EXPECT_TRUE((*j)["e"].is_null());
  EXPECT_EQ((*j)["f"], "text");
}

}  // namespace
}  // namespace vila::train
