// Checkpoint commits: the newest complete checkpoint is always findable, pruning keeps N, and a
// process killed with SIGKILL in the middle of writing a checkpoint leaves the previous one
// current and intact.
#include "train/run_dir.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../common/temp_dir.h"

namespace vila::train {
namespace {

namespace fs = std::filesystem;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s;
}

// Writes two files whose contents name the step.
Status write_step(const std::string& dir, int64_t step) {
  std::ofstream(dir + "/a.txt") << "step " << step;
  fs::create_directories(dir + "/llm");
  std::ofstream(dir + "/llm/b.txt") << std::string(4096, 'x') << step;
  return ok_status();
}

TEST(RunDir, CommitAndPrune) {
  testing::TempDir run;
  EXPECT_EQ(latest_checkpoint(run.path()).status().code(), StatusCode::kNotFound);
  for (int64_t step : {10, 20, 30, 40}) {
    auto dir = commit_checkpoint(run.path(), step, 2,
                                 [&](const std::string& d) { return write_step(d, step); });
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    EXPECT_EQ(fs::path(*dir).filename(), checkpoint_name(step));
  }
  auto latest = latest_checkpoint(run.path());
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(read(*latest + "/a.txt"), "step 40");
  EXPECT_EQ(read(run.path() + "/model/a.txt"), "step 40");  // the model link follows
  const auto all = list_checkpoints(run.path());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(fs::path(all[0]).filename(), checkpoint_name(30));
}

TEST(RunDir, FailedWriteKeepsPrevious) {
  testing::TempDir run;
  ASSERT_TRUE(commit_checkpoint(run.path(), 1, 3, [](const std::string& d) {
                return write_step(d, 1);
              }).ok());
  auto failed = commit_checkpoint(run.path(), 2, 3, [](const std::string& d) {
    (void)write_step(d, 2);
    return data_loss("disk full (simulated)");
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("disk full"), std::string::npos);
  auto latest = latest_checkpoint(run.path());
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(read(*latest + "/a.txt"), "step 1");
  for (const auto& e : fs::directory_iterator(run.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(RunDir, LatestNamingAMissingFolderIsDataLoss) {
  testing::TempDir run;
  run.write("latest", "checkpoint-000007\n");
  auto r = latest_checkpoint(run.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("checkpoint-000007"), std::string::npos);
}

// A child commits checkpoints in a loop; the parent kills it with SIGKILL at several moments.
// Whatever the moment, `latest` names a complete checkpoint whose files are all consistent.
TEST(RunDir, KillDuringCommitLeavesPreviousLoadable) {
  for (int trial = 0; trial < 6; ++trial) {
    testing::TempDir run;
    ASSERT_TRUE(commit_checkpoint(run.path(), 0, 2, [](const std::string& d) {
                  return write_step(d, 0);
                }).ok());
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int64_t step = 1;; ++step) {
        auto r = commit_checkpoint(run.path(), step, 2, [&](const std::string& d) {
          // Slow, multi-file writes so the kill lands inside one.
          for (int f = 0; f < 8; ++f) {
            std::ofstream(d + "/part" + std::to_string(f)) << std::string(64 << 10, 'p') << step;
          }
          return write_step(d, step);
        });
        if (!r.ok()) _exit(3);
      }
    }
    usleep(static_cast<useconds_t>(20000 + trial * 37000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped by itself";
    auto latest = latest_checkpoint(run.path());
    ASSERT_TRUE(latest.ok()) << latest.status().message();
    const std::string a = read(*latest + "/a.txt");
    ASSERT_EQ(a.rfind("step ", 0), 0u) << a;
    const std::string step = a.substr(5);
    EXPECT_EQ(read(*latest + "/llm/b.txt"), std::string(4096, 'x') + step);
    if (step != "0") {
      for (int f = 0; f < 8; ++f) {
        EXPECT_EQ(read(*latest + "/part" + std::to_string(f)), std::string(64 << 10, 'p') + step);
      }
    }
  }
}

}  // namespace
}  // namespace vila::train
