// The run folder of `vila train` and how checkpoints are committed to it so that a crash (kill -9,
// power loss) at any moment leaves the previous checkpoint whole and findable.
//
//   <run>/metrics.jsonl             one JSON object per step / evaluation (train/metrics.h)
//   <run>/config.json               the resolved TrainConfig
//   <run>/checkpoint-000120/        a complete checkpoint: the released model layout (config.json,
//                                   llm/, vision_tower/, mm_projector/) + optimizer.safetensors +
//                                   trainer_state.json (step, tokens, loader position, RNG)
//   <run>/latest                    one line: the name of the newest complete checkpoint
//   <run>/model -> checkpoint-...   (a copy-free pointer for `vila generate --model <run>/model`:
//                                   a symlink replaced atomically)
// Commit protocol: the contents are written into <run>/.checkpoint-000120.tmp-<pid>, every file
// and the folder are fsync'ed, the folder is renamed to its final name, the parent is fsync'ed,
// then `latest` is rewritten (temp file + fsync + rename) and the `model` link replaced. A crash
// before the `latest` rename leaves `latest` naming the previous checkpoint, which was never
// touched; leftover .tmp folders are removed by the next commit. Older checkpoints beyond `keep`
// are deleted only after the new one is committed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace vila::train {

// "checkpoint-000120".
std::string checkpoint_name(int64_t step);

// Writes a checkpoint folder through `write_contents(tmp_dir)` and commits it as described above.
// Returns the committed folder's path. On an error from write_contents the temp folder is removed
// and the previous checkpoint stays current.
StatusOr<std::string> commit_checkpoint(
    const std::string& run_dir, int64_t step, int keep,
    const std::function<Status(const std::string&)>& write_contents);

// The newest committed checkpoint folder of a run (from `latest`); NotFound naming the run when
// there is none, DataLoss when `latest` names a folder that is missing.
StatusOr<std::string> latest_checkpoint(const std::string& run_dir);

// Committed checkpoint folders, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);

// fsyncs a file or folder; InvalidArgument/DataLoss naming the path on failure.
Status fsync_path(const std::string& path);

}  // namespace vila::train
