// The training loop end to end on the tiny preset: a run stopped and resumed gives exactly the
// losses and weights of a run that never stopped; a non-finite step stops with the last good
// checkpoint kept (or is skipped); `vila train` killed with SIGKILL while it checkpoints every
// step leaves a checkpoint that loads; bad data gives messages naming the file and line.
#include "train/trainer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "../common/temp_dir.h"
#include "format/safetensors.h"
#include "model/vila_model.h"
#include "tiny_run.h"
#include "train/model/released_io.h"
#include "train/run_dir.h"

extern char** environ;

namespace vila::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using fixture::have_fashion;
using fixture::tiny_run;
using fixture::train;

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Trainer, ResumeIsBitExact) {
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  testing::TempDir a, b;
  auto whole = train(tiny_run(a.path(), 8), {});
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  ASSERT_EQ(whole->size(), 8u);
  EXPECT_LT(whole->back(), whole->front()) << "the loss should go down on this data";

  TrainerOptions first;
  first.stop_after = 3;
  auto part = train(tiny_run(b.path(), 8), first);
  ASSERT_TRUE(part.ok()) << part.status().message();
  ASSERT_EQ(part->size(), 3u);
  TrainerOptions again;
  again.resume = true;
  auto rest = train(tiny_run(b.path(), 8), again);
  ASSERT_TRUE(rest.ok()) << rest.status().message();
  ASSERT_EQ(rest->size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ((*whole)[i], (*rest)[i]) << "step " << i + 1;
  // The weights and the optimizer state too.
  auto la = latest_checkpoint(a.path());
  auto lb = latest_checkpoint(b.path());
  ASSERT_TRUE(la.ok() && lb.ok());
  for (const char* f : {"llm/model.safetensors", "vision_tower/model.safetensors",
                        "mm_projector/model.safetensors", "optimizer.safetensors"}) {
    EXPECT_EQ(file_bytes(*la + "/" + f), file_bytes(*lb + "/" + f)) << f;
  }
  // A resume with another config is refused.
  json other = tiny_run(b.path(), 8);
  other["optimizer"]["lr"] = 1e-3;
  TrainerOptions resume;
  resume.resume = true;
  auto refused = train(other, resume);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("trainer_state.json"), std::string::npos)
      << refused.status().message();
}

TEST(Trainer, SavedModelRunsThroughInference) {
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  testing::TempDir run;
  ASSERT_TRUE(train(tiny_run(run.path(), 2), {}).ok());
  auto dir = latest_checkpoint(run.path());
  ASSERT_TRUE(dir.ok());
  auto model = VilaModel::load(run.path() + "/model");  // the link to the newest checkpoint
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_TRUE((*model)->vision_tower().has_value());
  EXPECT_TRUE((*model)->image_token_id().has_value());
}

TEST(Trainer, NonFiniteStepStopsAndKeepsLastCheckpoint) {
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  testing::TempDir run;
  json j = tiny_run(run.path(), 6);
  j["checkpoint"]["every"] = 2;
  TrainerOptions options;
  options.after_backward = [](int64_t step, ParamStore& params) {
    if (step == 4) params.trainable().front()->grad[0] = NAN;
  };
  auto r = train(j, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("step 4"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("checkpoint-000002"), std::string::npos);
  auto latest = latest_checkpoint(run.path());
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(fs::path(*latest).filename(), "checkpoint-000002");
  ParamStore store;
  VlmConfig config;
  ASSERT_TRUE(load_released(*latest, store, &config).ok());
  for (const Param* p : store.all()) {
    for (float v : p->value) ASSERT_TRUE(std::isfinite(v)) << p->full_name();
  }

  // on_nan: skip drops that step's update and goes on.
  testing::TempDir skip_run;
  json s = tiny_run(skip_run.path(), 6);
  s["checkpoint"]["on_nan"] = "skip";
  auto skipped = train(s, options);
  ASSERT_TRUE(skipped.ok()) << skipped.status().message();
  EXPECT_EQ(skipped->size(), 6u);
}

TEST(Trainer, BadDataIsNamed) {
  testing::TempDir dir;
  dir.write("data.jsonl",
            "{\"image\": \"missing.png\", \"conversations\": [{\"from\": \"human\", \"value\": "
            "\"<image>\\nWhat?\"}, {\"from\": \"gpt\", \"value\": \"A cat.\"}]}\n"
            "{not json\n");
  json j = tiny_run(dir.file("run"), 2);
  j["data"] = {{"jsonl", {{{"path", dir.file("data.jsonl")}}}}};
  auto r = train(j, {});
  ASSERT_FALSE(r.ok());
  // Both records are bad: the error names the file, a line and the missing image.
  EXPECT_NE(r.status().message().find("data.jsonl"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("no usable samples"), std::string::npos)
      << r.status().message();
}

// device: cuda without a usable GPU (a CPU-only build, or no device) is refused with a message
// naming CUDA, before anything is written but the output folder. (tests/cuda/vlm_train_cuda_test
// trains on the GPU when there is one.)
TEST(Trainer, CudaDeviceWithoutGpuIsRefused) {
#ifdef VILA_WITH_CUDA
  GTEST_SKIP() << "CUDA build: the GPU path is tested in tests/cuda";
#endif
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  testing::TempDir dir;
  json j = tiny_run(dir.file("run"), 2);
  j["device"] = "cuda";
  auto r = train(j, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("CUDA"), std::string::npos) << r.status().message();
}

// `vila train` killed with SIGKILL at several moments while it checkpoints after every step:
// the latest checkpoint always loads (weights, optimizer state and trainer state).
TEST(Trainer, KillDuringCheckpointLeavesLoadableCheckpoint) {
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  if (!fs::exists(VILA_CLI_PATH)) GTEST_SKIP() << "vila binary not built";
  for (int trial = 0; trial < 3; ++trial) {
    testing::TempDir dir;
    json j = tiny_run(dir.file("run"), 400);
    j["checkpoint"]["every"] = 1;
    { std::ofstream(dir.file("run.json")) << j.dump(); }
    const std::string config = dir.file("run.json");
    const char* argv[] = {VILA_CLI_PATH, "train", "--config", config.c_str(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    ASSERT_EQ(
        posix_spawn(&pid, VILA_CLI_PATH, &actions, nullptr, const_cast<char**>(argv), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    // Wait for the first checkpoint, then a little more (a different moment per trial).
    for (int i = 0; i < 600 && !fs::exists(dir.file("run/latest")); ++i) usleep(50000);
    usleep(static_cast<useconds_t>(30000 + 45000 * trial));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "vila train ended by itself (status " << status << ")";
    auto latest = latest_checkpoint(dir.file("run"));
    ASSERT_TRUE(latest.ok()) << latest.status().message();
    ParamStore store;
    VlmConfig vc;
    ASSERT_TRUE(load_released(*latest, store, &vc).ok()) << *latest;
    auto opt = SafetensorsFile::open(*latest + "/optimizer.safetensors");
    ASSERT_TRUE(opt.ok()) << opt.status().message();
    std::ifstream state(*latest + "/trainer_state.json");
    json js = json::parse(state, nullptr, false);
    ASSERT_FALSE(js.is_discarded());
    EXPECT_EQ(fs::path(*latest).filename(), checkpoint_name(js["step"].get<int64_t>()));
  }
}

}  // namespace
}  // namespace vila::train
