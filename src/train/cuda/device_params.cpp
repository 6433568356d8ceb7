// DeviceParams (device_params.h): layout, host <-> device copies, the optimizer on the GPU.
#include "train/cuda/device_params.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "backend/cuda/memory.h"
#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_optim.h"

namespace vila::train {

namespace {

constexpr int64_t kAlign = 128;                   // elements: 256 bytes of the bf16 copy
constexpr float kInitBound = 0.02f * 1.7320508f;  // uniform ±0.02·√3: std 0.02
constexpr uint64_t kSeedStride = 1000003;

int64_t align_up(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The members of the fused GEMM group `name` heads ("...q_proj.weight" -> q, k, v), or empty
// when it heads none. Members other than the head are found through member_of_chain.
std::vector<std::string> chain_from(const std::string& name) {
  auto swap = [&](const std::string& from, const std::string& to) {
    const size_t at = name.rfind(from);
    return name.substr(0, at) + to + name.substr(at + from.size());
  };
  if (name.find("q_proj.") != std::string::npos) {
    return {name, swap("q_proj.", "k_proj."), swap("q_proj.", "v_proj.")};
  }
  if (name.find("gate_proj.") != std::string::npos) return {name, swap("gate_proj.", "up_proj.")};
  return {};
}

}  // namespace

struct DeviceParams::Buffers {
  std::vector<cuda::DeviceBuffer> owned;
};

DeviceParams::~DeviceParams() = default;

StatusOr<std::unique_ptr<DeviceParams>> DeviceParams::create(
    const std::vector<DeviceParamSpec>& specs, void* stream) {
  std::unique_ptr<DeviceParams> dp(new DeviceParams());
  dp->stream_ = stream;
  std::map<std::string, const DeviceParamSpec*> by_name;
  for (const DeviceParamSpec& s : specs) {
    if (s.numel <= 0 || !by_name.emplace(s.full_name, &s).second) {
      return invalid_argument("DeviceParams: duplicate or empty parameter " + s.full_name);
    }
  }
  std::set<std::string> placed;
  int64_t off = 0;
  auto place = [&](const DeviceParamSpec& s) {
    dp->entries_[s.full_name] =
        Entry{off, s.numel, s.role, s.trainable,
              s.role == ParamRole::kNorm && ends_with(s.full_name, ".bias")};
    dp->order_.push_back(s.full_name);
    placed.insert(s.full_name);
    off += s.numel;
  };
  // group 0: trainable + decaying, 1: trainable, 2: frozen.
  auto group_of = [](const DeviceParamSpec& s) {
    if (!s.trainable) return 2;
    return s.role == ParamRole::kWeight ? 0 : 1;
  };
  for (int group = 0; group < 3; ++group) {
    for (const DeviceParamSpec& s : specs) {
      if (group_of(s) != group || placed.contains(s.full_name)) continue;
      off = align_up(off);
      std::vector<std::string> chain = chain_from(s.full_name);
      bool whole = !chain.empty();
      for (const std::string& n : chain) {
        auto it = by_name.find(n);
        whole =
            whole && it != by_name.end() && group_of(*it->second) == group && !placed.contains(n);
      }
      if (!whole) {
        place(s);
        continue;
      }
      for (const std::string& n : chain) place(*by_name[n]);
    }
    off = align_up(off);
    if (group == 0) dp->n_decay_ = off;
    if (group == 1) dp->n_trainable_ = off;
  }
  dp->n_ = std::max<int64_t>(off, kAlign);
  for (const std::string& name : dp->order_) {  // layout order: offsets ascending
    Entry& e = dp->entries_.at(name);
    if (!e.trainable) continue;
    e.slot = static_cast<int64_t>(dp->grad_begin_.size());
    dp->grad_begin_.push_back(e.offset);
    dp->grad_end_.push_back(e.offset + e.numel);
  }
  dp->written_.assign(dp->grad_begin_.size(), 0);  // generation_ starts at 1: all unwritten
  VILA_RETURN_IF_ERROR(dp->allocate());
  return dp;
}

StatusOr<std::unique_ptr<DeviceParams>> DeviceParams::from_store(const ParamStore& store,
                                                                 void* stream) {
  std::vector<DeviceParamSpec> specs;
  for (const Param* p : store.all()) {
    specs.push_back({p->full_name(), p->role, p->numel(), p->trainable});
  }
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<DeviceParams> dp, create(specs, stream));
  VILA_RETURN_IF_ERROR(dp->upload_values(store));
  return dp;
}

Status DeviceParams::allocate() {
  buffers_ = std::make_unique<Buffers>();
  auto alloc = [&](size_t bytes) -> StatusOr<void*> {
    VILA_ASSIGN_OR_RETURN(cuda::DeviceBuffer b, cuda::DeviceBuffer::create(bytes));
    void* ptr = b.data();
    VILA_RETURN_IF_ERROR(cuda::memset_device(ptr, 0, bytes, stream_));
    buffers_->owned.push_back(std::move(b));
    return ptr;
  };
  const auto n = static_cast<size_t>(n_);
  VILA_ASSIGN_OR_RETURN(void* p, alloc(n * sizeof(float)));
  VILA_ASSIGN_OR_RETURN(void* g, alloc(std::max<size_t>(n_trainable_, 1) * sizeof(float)));
  VILA_ASSIGN_OR_RETURN(void* m, alloc(std::max<size_t>(n_trainable_, 1) * sizeof(float)));
  VILA_ASSIGN_OR_RETURN(void* v, alloc(std::max<size_t>(n_trainable_, 1) * sizeof(float)));
  VILA_ASSIGN_OR_RETURN(void* p16, alloc(n * sizeof(uint16_t)));
  VILA_ASSIGN_OR_RETURN(void* ss, alloc(sizeof(double)));
  p_ = static_cast<float*>(p);
  g_ = static_cast<float*>(g);
  m_ = static_cast<float*>(m);
  v_ = static_cast<float*>(v);
  p16_ = static_cast<uint16_t*>(p16);
  sumsq_ = static_cast<double*>(ss);
  return ok_status();
}

StatusOr<int64_t> DeviceParams::offset(const std::string& full_name) const {
  auto it = entries_.find(full_name);
  if (it == entries_.end()) return not_found("DeviceParams: no parameter " + full_name);
  return it->second.offset;
}

int64_t DeviceParams::count() const {
  int64_t n = 0;
  for (const auto& [name, e] : entries_) n += e.numel;
  return n;
}

bool DeviceParams::trainable(const std::string& full_name) const {
  auto it = entries_.find(full_name);
  return it != entries_.end() && it->second.trainable;
}

Status DeviceParams::upload_values(const ParamStore& store) {
  for (const Param* p : store.all()) {
    auto it = entries_.find(p->full_name());
    if (it == entries_.end() || it->second.numel != p->numel()) {
      return invalid_argument("DeviceParams: " + p->full_name() + " is not in the device layout");
    }
    VILA_RETURN_IF_ERROR(cuda::copy_to_device(p_ + it->second.offset, p->value.data(),
                                              p->value.size() * sizeof(float), stream_));
  }
  VILA_RETURN_IF_ERROR(cuda::train_f32_to_bf16(p16_, p_, n_, stream_));
  return ok_status();  // pageable copies have left the host buffers
}

Status DeviceParams::download_values(ParamStore& store) const {
  for (Param* p : store.all()) {
    VILA_ASSIGN_OR_RETURN(const int64_t off, offset(p->full_name()));
    VILA_RETURN_IF_ERROR(
        cuda::copy_to_host(p->value.data(), p_ + off, p->value.size() * sizeof(float), stream_));
  }
  return ok_status();
}

Status DeviceParams::fill_random(uint64_t seed) {
  uint64_t k = 0;
  for (const std::string& name : order_) {
    const Entry& e = entries_.at(name);
    float* dst = p_ + e.offset;
    ++k;
    if (e.role == ParamRole::kWeight || e.role == ParamRole::kEmbedding) {
      VILA_RETURN_IF_ERROR(
          cuda::train_fill_uniform(dst, e.numel, seed * kSeedStride + k, kInitBound, stream_));
    } else {
      const float value = e.role == ParamRole::kNorm && !e.shift ? 1.0f : 0.0f;
      VILA_RETURN_IF_ERROR(cuda::train_fill_constant(dst, e.numel, value, stream_));
    }
  }
  return cuda::train_f32_to_bf16(p16_, p_, n_, stream_);
}

StatusOr<std::vector<float>> DeviceParams::download(const std::string& full_name,
                                                    const float* base) const {
  auto it = entries_.find(full_name);
  if (it == entries_.end()) return not_found("DeviceParams: no parameter " + full_name);
  std::vector<float> out(static_cast<size_t>(it->second.numel));
  VILA_RETURN_IF_ERROR(cuda::copy_to_host(out.data(), base + it->second.offset,
                                          out.size() * sizeof(float), stream_));
  return out;
}

StatusOr<std::vector<float>> DeviceParams::download_value(const std::string& full_name) const {
  return download(full_name, p_);
}

StatusOr<std::vector<float>> DeviceParams::download_grad(const std::string& full_name) const {
  if (!trainable(full_name)) {
    return invalid_argument("DeviceParams: " + full_name + " is frozen (no gradient)");
  }
  const Entry& e = entries_.at(full_name);
  if (!written(static_cast<size_t>(e.slot))) {  // not reached since zero_grads(): zero
    return std::vector<float>(static_cast<size_t>(e.numel), 0.0f);
  }
  return download(full_name, g_);
}

Status DeviceParams::zero_grads() {
  ++generation_;  // every slot unwritten; the writers zero or overwrite (header comment)
  return ok_status();
}

Status DeviceParams::grad_slots(const char* op, int64_t off, int64_t numel, size_t* first,
                                size_t* last) const {
  if (off < 0 || numel <= 0 || off + numel > n_trainable_) {
    return invalid_argument(std::string("DeviceParams::") + op + ": range [" + std::to_string(off) +
                            ", " + std::to_string(off + numel) +
                            ") is not inside the trainable gradients [0, " +
                            std::to_string(n_trainable_) + ")");
  }
  // The first slot ending after off; slots are sorted and disjoint, so ends ascend too.
  *first = static_cast<size_t>(std::upper_bound(grad_end_.begin(), grad_end_.end(), off) -
                               grad_end_.begin());
  size_t i = *first;
  while (i < grad_begin_.size() && grad_begin_[i] < off + numel) ++i;
  *last = i;
  if (*first == *last) {
    return invalid_argument(std::string("DeviceParams::") + op + ": range [" + std::to_string(off) +
                            ", " + std::to_string(off + numel) +
                            ") covers no parameter (alignment padding)");
  }
  return ok_status();
}

Status DeviceParams::zero_unwritten(size_t first, size_t last) {
  for (size_t i = first; i < last;) {
    if (written(i)) {
      ++i;
      continue;
    }
    size_t j = i + 1;  // a run of unwritten slots [i, j): one memset (padding between is 0)
    while (j < last && !written(j)) ++j;
    const int64_t begin = grad_begin_[i];
    const int64_t end = grad_end_[j - 1];
    VILA_RETURN_IF_ERROR(cuda::memset_device(
        g_ + begin, 0, static_cast<size_t>(end - begin) * sizeof(float), stream_));
    i = j;
  }
  for (size_t i = first; i < last; ++i) written_[i] = generation_;
  return ok_status();
}

StatusOr<float> DeviceParams::grad_beta(int64_t off, int64_t numel) {
  size_t first = 0;
  size_t last = 0;
  VILA_RETURN_IF_ERROR(grad_slots("grad_beta", off, numel, &first, &last));
  bool fresh = true;  // every slot unwritten and wholly inside the range: the GEMM writes them
  for (size_t i = first; i < last && fresh; ++i) {
    fresh = !written(i) && grad_begin_[i] >= off && grad_end_[i] <= off + numel;
  }
  if (fresh) {
    for (size_t i = first; i < last; ++i) written_[i] = generation_;
    return 0.0f;
  }
  VILA_RETURN_IF_ERROR(zero_unwritten(first, last));
  return 1.0f;
}

Status DeviceParams::prepare_grad_add(int64_t off, int64_t numel) {
  if (off >= n_trainable_) return ok_status();  // frozen: no gradient
  size_t first = 0;
  size_t last = 0;
  VILA_RETURN_IF_ERROR(grad_slots("prepare_grad_add", off, numel, &first, &last));
  return zero_unwritten(first, last);
}

Status DeviceParams::zero_unwritten_grads() { return zero_unwritten(0, grad_begin_.size()); }

StatusOr<double> DeviceParams::grad_norm() {
  VILA_RETURN_IF_ERROR(zero_unwritten_grads());
  VILA_RETURN_IF_ERROR(cuda::memset_device(sumsq_, 0, sizeof(double), stream_));
  if (n_trainable_ > 0) {
    VILA_RETURN_IF_ERROR(cuda::train_grad_sumsq(sumsq_, g_, n_trainable_, stream_));
  }
  double sumsq = 0;
  VILA_RETURN_IF_ERROR(cuda::copy_to_host(&sumsq, sumsq_, sizeof(double), stream_));
  return std::sqrt(sumsq);
}

Status DeviceParams::adamw_step(const AdamWConfig& config, double lr, double max_norm) {
  if (n_trainable_ == 0) return ok_status();
  VILA_RETURN_IF_ERROR(zero_unwritten_grads());
  if (max_norm > 0) {  // the kernel reads Σ g² on the device
    VILA_RETURN_IF_ERROR(cuda::memset_device(sumsq_, 0, sizeof(double), stream_));
    VILA_RETURN_IF_ERROR(cuda::train_grad_sumsq(sumsq_, g_, n_trainable_, stream_));
  }
  cuda::AdamWStep s;
  s.lr = lr;
  s.beta1 = config.beta1;
  s.beta2 = config.beta2;
  s.eps = config.eps;
  s.weight_decay = config.weight_decay;
  s.step = ++step_;
  s.max_norm = max_norm;
  s.sumsq = sumsq_;
  return cuda::train_adamw(p_, p16_, g_, m_, v_, n_trainable_, n_decay_, s, stream_);
}

Status DeviceParams::download_state(AdamW& optimizer, const ParamStore& store) const {
  for (const Param* p : store.all()) {
    if (!p->trainable || step_ == 0) continue;
    VILA_ASSIGN_OR_RETURN(std::vector<float> m, download(p->full_name(), m_));
    VILA_ASSIGN_OR_RETURN(std::vector<float> v, download(p->full_name(), v_));
    VILA_RETURN_IF_ERROR(optimizer.set_state(*p, step_, m.data(), v.data()));
  }
  return ok_status();
}

Status DeviceParams::upload_state(const AdamW& optimizer, const ParamStore& store) {
  if (optimizer.config().exp_avg_format != StateFormat::kF32 ||
      optimizer.config().exp_avg_sq_format != StateFormat::kF32) {
    return unimplemented("CUDA training keeps the AdamW moments in f32 (state_format: f32)");
  }
  int64_t step = -1;
  for (const Param* p : store.all()) {
    const AdamWParamState* s = optimizer.state(p->full_name());
    if (!p->trainable || s == nullptr) continue;
    if (step >= 0 && s->step != step) {
      return unimplemented("CUDA training needs one AdamW step count for every parameter; " +
                           p->full_name() + " has " + std::to_string(s->step) + ", others " +
                           std::to_string(step));
    }
    step = s->step;
    VILA_ASSIGN_OR_RETURN(const int64_t off, offset(p->full_name()));
    const std::vector<float> m = s->exp_avg.to_f32();
    const std::vector<float> v = s->exp_avg_sq.to_f32();
    VILA_RETURN_IF_ERROR(
        cuda::copy_to_device(m_ + off, m.data(), m.size() * sizeof(float), stream_));
    VILA_RETURN_IF_ERROR(
        cuda::copy_to_device(v_ + off, v.data(), v.size() * sizeof(float), stream_));
  }
  step_ = std::max<int64_t>(step, 0);
  return ok_status();  // pageable copies have left the host buffers
}

}  // namespace vila::train
