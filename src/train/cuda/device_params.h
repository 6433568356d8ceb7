// DeviceParams: every parameter of a VLM on the GPU for training — fp32 master values, fp32
// gradients, fp32 AdamW moments and a bf16 copy of the values for the GEMMs, each one buffer.
//
// Layout (offsets in elements, the same in all five buffers):
//   [ trainable, decaying | trainable, not decaying | frozen ]
// so one AdamW kernel steps [0, n_trainable) with weight decay on [0, n_decay) and one kernel sums
// the gradients' squares. Within a group parameters keep their registration order, except that
// the fused GEMM groups are kept contiguous: a Linear's q_proj / k_proj / v_proj (weights, and
// biases) and an MLP's gate_proj / up_proj, so each group runs as one GEMM (Wqkv (qd + 2 kvd, C),
// Wgu (2F, C)). Every group starts 256-byte aligned for the bf16 copy.
// Frozen parameters have no gradient: grad() returns null and callers skip their dW GEMMs.
// The step count t is one for all trainable parameters (PyTorch keeps one per parameter; in a run
// they are always equal, checked when a host optimizer state is uploaded).
//
// Lazy gradient zeroing: zero_grads() touches no memory, it marks every trainable entry's gradient
// "unwritten" (a generation counter per entry). A writer then says how it writes:
//   - a GEMM that overwrites or accumulates dW asks grad_beta(off, numel) for its beta: 0 when no
//     entry of the range is written yet (the GEMM writes it, C is not read), else 1 after the
//     unwritten entries of the range are zeroed on the stream;
//   - any other writer that adds (+=, atomics: norm weights, column sums for biases, embedding
//     scatter, position embeddings) calls prepare_grad_add(off, numel) first, which zeroes the
//     unwritten entries of the range.
// Both mark the range written, so the second micro-batch of an accumulation adds (beta 1). Every
// reader of the whole gradient (grad_norm, adamw_step) first zeroes the entries the batch never
// reached (zero_unwritten_grads); download_grad returns zeros for an unwritten entry. A step with
// one micro-batch thus neither memsets nor reads back the GEMM-written gradients.
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

  // Lazy zeroing (header comment). The range [off, off + numel) covers one or more whole entries
  // (a fused group); InvalidArgument when it leaves the trainable region or covers no entry.
  // The beta for a GEMM writing dW over the range: 0 when no entry of it is written since
  // zero_grads() (and the range covers each whole), else 1 with the unwritten ones zeroed first.
  StatusOr<float> grad_beta(int64_t off, int64_t numel);
  // Before adding into the gradient over the range: zeroes its unwritten entries. A no-op for a
  // frozen range (off >= trainable_size()), so callers need not check.
  Status prepare_grad_add(int64_t off, int64_t numel);
  // Zeroes every trainable entry not written since zero_grads() (grad_norm / adamw_step do).
  Status zero_unwritten_grads();

  // Host <-> device: values of every parameter of `store` (names must match the layout).
  Status upload_values(const ParamStore& store);
  Status download_values(ParamStore& store) const;
  // Random values on the device (benchmarks): matrices / embeddings uniform ±0.02·√3 from a
  // counter hash of (seed, parameter index), norm scales 1, biases and norm shifts 0.
  Status fill_random(uint64_t seed);
  // Host copies by full name.
  StatusOr<std::vector<float>> download_value(const std::string& full_name) const;
  StatusOr<std::vector<float>> download_grad(const std::string& full_name) const;

  // Optimizer: zero the gradients (lazily: marks them unwritten); the global norm (sqrt Σ g²,
  // double accumulation; one host sync); AdamW at `lr` with the gradients multiplied by clip_scale
  // first (norm-based clipping folded into the kernel when max_norm > 0).
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
    int64_t slot = -1;   // index into grad_begin_ / grad_end_ / written_ (trainable only)
  };
  DeviceParams() = default;
  Status allocate();
  StatusOr<std::vector<float>> download(const std::string& full_name, const float* base) const;
  bool written(size_t slot) const { return written_[slot] == generation_; }
  // The slots overlapping [off, off + numel): [*first, *last); InvalidArgument naming `op`.
  Status grad_slots(const char* op, int64_t off, int64_t numel, size_t* first, size_t* last) const;
  // Zeroes the unwritten slots of [first, last) (adjacent ones in one memset) and marks all of
  // them written.
  Status zero_unwritten(size_t first, size_t last);

  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;  // names in layout order
  // Trainable entries in layout (= offset) order: [grad_begin_[i], grad_end_[i]) and the
  // generation they were last written in (written when equal to generation_).
  std::vector<int64_t> grad_begin_, grad_end_;
  std::vector<uint64_t> written_;
  uint64_t generation_ = 1;
  int64_t n_ = 0, n_trainable_ = 0, n_decay_ = 0;
  int64_t step_ = 0;
  void* stream_ = nullptr;
  std::unique_ptr<Buffers> buffers_;
  float *p_ = nullptr, *g_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  uint16_t* p16_ = nullptr;
  double* sumsq_ = nullptr;
};

}  // namespace vila::train
