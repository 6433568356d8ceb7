#include "runtime/decoder.h"

#include <string>

#include "model/llm_engine.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#endif

namespace vila {

bool cuda_available() {
#ifdef VILA_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

Status CpuDecoder::begin(int64_t capacity) {
  cache_ = llm_.make_cache(capacity);
  return ok_status();
}

StatusOr<int32_t> CpuDecoder::step(int32_t token, Sampler& sampler, uint64_t) {
  const LlmConfig& c = llm_.config();
  embed_.resize(static_cast<size_t>(c.hidden));
  logits_.resize(static_cast<size_t>(c.vocab_size));
  VILA_RETURN_IF_ERROR(llm_.embed(&token, 1, embed_.data()));
  VILA_RETURN_IF_ERROR(llm_.forward(embed_.data(), 1, cache_, logits_.data(), 1));
  return sampler.sample(logits_.data(), c.vocab_size);
}

CudaDecoder::~CudaDecoder() {
  if (seq_ >= 0) engine_.release(seq_);
}

const LlmConfig& CudaDecoder::config() const { return engine_.config(); }

int64_t CudaDecoder::length() const { return seq_ >= 0 ? engine_.length(seq_) : 0; }

Status CudaDecoder::begin(int64_t capacity) {
  if (seq_ >= 0) engine_.release(seq_);
  seq_ = -1;
  if (capacity > engine_.options().max_seq) {
    return out_of_range("CudaDecoder: " + std::to_string(capacity) +
                        " positions exceed the engine's max_seq " +
                        std::to_string(engine_.options().max_seq));
  }
  VILA_ASSIGN_OR_RETURN(seq_, engine_.new_sequence());
  capacity_ = capacity;
  return ok_status();
}

Status CudaDecoder::forward(const float* embeds, int64_t n, float* logits, int64_t n_logits) {
  if (seq_ < 0) return internal_error("CudaDecoder::forward before begin()");
  if (n > capacity_ - length()) {
    return out_of_range("forward: " + std::to_string(n) + " new positions at length " +
                        std::to_string(length()) + " exceed the capacity " +
                        std::to_string(capacity_));
  }
  return engine_.prefill(seq_, embeds, n, logits, n_logits);
}

StatusOr<int32_t> CudaDecoder::step(int32_t token, Sampler& sampler, uint64_t index) {
  if (seq_ < 0) return internal_error("CudaDecoder::step before begin()");
  if (length() + 1 > capacity_) {
    return out_of_range("step: the sequence is full (" + std::to_string(capacity_) + ")");
  }
  std::vector<int32_t> next;
  VILA_RETURN_IF_ERROR(engine_.decode({seq_}, {token}, sampler.params(), index, next));
  return next.at(0);
}

}  // namespace vila
