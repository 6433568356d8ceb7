// CUDA graphs: record the kernels a stream runs once, then replay them with one launch. The decode
// step of the engine is captured per batch size, so a token costs one graph launch instead of a
// few hundred kernel launches. Kernels in a graph keep their arguments, so everything that changes
// between steps (token ids, positions, lengths, page tables) lives in device memory.
#pragma once

#include "core/status.h"

namespace vila::cuda {

class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Starts recording `stream` (thread-local capture mode: other threads may keep launching).
  static Status begin_capture(void* stream);
  // Ends the recording begun on `stream` and instantiates it.
  static StatusOr<Graph> end_capture(void* stream);
  // Aborts a capture after an error inside it (ignores the result).
  static void abort_capture(void* stream);
  Status launch(void* stream) const;
  bool empty() const { return exec_ == nullptr; }

 private:
  void* exec_ = nullptr;  // cudaGraphExec_t
};

}  // namespace vila::cuda
