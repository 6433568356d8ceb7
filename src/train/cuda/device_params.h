// DeviceParams: every parameter of a VLM on the GPU for training — fp32 master values, fp32
// gradients, fp32 AdamW moments and a bf16 copy of the values for the GEMMs, each one buffer.
//
// Layout (offsets in elements, the same in all five buffers):
//   [ trainable, decaying | trainable, not decaying | frozen ]
// so one AdamW kernel steps [0, n_trainable) with weight decay on [0, n_decay), one kernel zeroes
// the gradients and one sums their squares. Within a group parameters keep their registration
// order, except that the fused GEMM groups are kept contiguous: a Linear's q_proj / k_proj /
// v_proj (weights, and biases) and an MLP's gate_proj / up_proj, so each group runs as one GEMM
// (Wqkv (qd + 2 kvd, C), Wgu (2F, C)). Every group starts 256-byte aligned for the bf16 copy.
// Frozen parameters have no gradient: grad() returns null and callers skip their dW GEMMs.
// The step count t is one for all trainable parameters (PyTorch keeps one per parameter; in a run
// they are always equal, checked when a host optimizer state is uploaded).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/optimizer.h"
#include "train/params.h"

namespace vila::train {

struct DeviceParamSpec {
  std::string full_name;  // "llm/model.norm.weight"
  ParamRole role = ParamRole::kWeight;
  int64_t numel = 0;
  bool trainable = true;
};

class DeviceParams {
 public:
  // The layout of `specs` (allocated, values zero).
  static StatusOr<std::unique_ptr<DeviceParams>> create(const std::vector<DeviceParamSpec>& specs,
                                                        void* stream);
  // The layout of every parameter of `store` (its trainable flags), values uploaded.
  static StatusOr<std::unique_ptr<DeviceParams>> from_store(const ParamStore& store, void* stream);
  ~DeviceParams();
  DeviceParams(const DeviceParams&) = delete;
  DeviceParams& operator=(const DeviceParams&) = delete;

  // Offset of a parameter by full name; NotFound naming it.
  StatusOr<int64_t> offset(const std::string& full_name) const;
  bool contains(const std::string& full_name) const { return entries_.contains(full_name); }
  bool trainable(const std::string& full_name) const;

  // Device pointers at an offset (from offset()).
  float* value(int64_t off) const { return p_ + off; }
  const void* value16(int64_t off) const { return p16_ + off; }
  // Null when the parameter at `off` is frozen.
  float* grad(int64_t off) const { return off < n_trainable_ ? g_ + off : nullptr; }

  // Host <-> device: values of every parameter of `store` (names must match the layout).
  Status upload_values(const ParamStore& store);
  Status download_values(ParamStore& store) const;
  // Random values on the device (benchmarks): matrices / embeddings uniform ±0.02·√3 from a
  // counter hash of (seed, parameter index), norm scales 1, biases and norm shifts 0.
  Status fill_random(uint64_t seed);
  // Host copies by full name.
  StatusOr<std::vector<float>> download_value(const std::string& full_name) const;
  StatusOr<std::vector<float>> download_grad(const std::string& full_name) const;

  // Optimizer: zero the gradients; the global norm (sqrt Σ g², double accumulation; one host
  // sync); AdamW at `lr` with the gradients multiplied by clip_scale first (norm-based clipping
  // folded into the kernel when max_norm > 0).
  Status zero_grads();
  StatusOr<double> grad_norm();
  Status adamw_step(const AdamWConfig& config, double lr, double max_norm);
  int64_t step_count() const { return step_; }
  // The moments as a host AdamW's state (f32 formats only) and back.
  Status download_state(AdamW& optimizer, const ParamStore& store) const;
  Status upload_state(const AdamW& optimizer, const ParamStore& store);

  int64_t size() const { return n_; }  // elements of each buffer (padding included)
  int64_t count() const;               // parameter values (no padding)
  int64_t trainable_size() const { return n_trainable_; }
  void* stream() const { return stream_; }

  struct Buffers;

 private:
  struct Entry {
    int64_t offset = 0;
    int64_t numel = 0;
    ParamRole role = ParamRole::kWeight;
    bool trainable = true;
    bool shift = false;  // a ".bias" of a norm (initialised to 0)
  };
  DeviceParams() = default;
  Status allocate();
  StatusOr<std::vector<float>> download(const std::string& full_name, const float* base) const;

  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;  // names in layout order
  int64_t n_ = 0, n_trainable_ = 0, n_decay_ = 0;
  int64_t step_ = 0;
  void* stream_ = nullptr;
  std::unique_ptr<Buffers> buffers_;
  float *p_ = nullptr, *g_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  uint16_t* p16_ = nullptr;
  double* sumsq_ = nullptr;
};

}  // namespace vila::train
