#include <utility>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/graph.h"

namespace vila::cuda {

Graph::~Graph() {
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
}

Graph::Graph(Graph&& other) noexcept : exec_(std::exchange(other.exec_, nullptr)) {}

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this != &other) {
    if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
    exec_ = std::exchange(other.exec_, nullptr);
  }
  return *this;
}

Status Graph::begin_capture(void* stream) {
  VILA_CUDA_CHECK(
      cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeThreadLocal));
  return ok_status();
}

StatusOr<Graph> Graph::end_capture(void* stream) {
  cudaGraph_t graph = nullptr;
  VILA_CUDA_CHECK(cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  VILA_CUDA_CHECK(err);
  Graph out;
  out.exec_ = exec;
  return out;
}

void Graph::abort_capture(void* stream) {
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph) == cudaSuccess &&
      graph != nullptr) {
    cudaGraphDestroy(graph);
  }
  cudaGetLastError();
}

Status Graph::launch(void* stream) const {
  if (exec_ == nullptr) return internal_error("Graph::launch: nothing captured");
  VILA_CUDA_CHECK(
      cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), static_cast<cudaStream_t>(stream)));
  return ok_status();
}

}  // namespace vila::cuda
