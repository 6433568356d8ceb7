// Projector: VILA's MultimodalProjector (mm_projector/), vision features -> LLM embeddings.
//
// Dimensions: Lin tokens per item (a square s x s grid), C = mm_hidden_size, H = LLM hidden,
// k spatial-to-channel factor, Lout = ceil(s/k)² tokens out.
//
// Types (VILA llava/model/multimodal_projector/base_projector.py; the Sequential index is the
// tensor name "layers.<i>"):
//   mlp_downsample, mlp_downsample_2x2_fix   0 STC2  1 LN(4C)  2 Linear(4C->H)  3 GELU  4 Linear
//   mlp_downsample_3x3_fix                   0 STC3  1 LN(9C)  2 Linear(9C->3C) 3 GELU  4 LN(3C)
//                                            5 Linear(3C->H)  6 GELU  7 Linear(H->H)
//   mlp_downsample_3x3_s2, _3x3_s2_new       deeper LN/Linear/GELU stacks after STC3
//   linear                                   Linear(C->H), tensors "layers.{weight,bias}"
//   mlp<N>x_gelu                             Linear(C->H) then (GELU, Linear(H->H)) x (N-1)
//   identity                                 nothing (H = C)
// LayerNorm is nn.LayerNorm (eps 1e-5), GELU is nn.GELU() (erf).
//
// Spatial-to-channel k x k (flat_square_2x2 / flat_square_3x3 / DownSampleBlock.flat_square):
// x (s, s, C) row-major, zero-padded at the end to a multiple of k (rows, then columns);
//   out[i, j, dr*k*C + dc*C + c] = x[k*i + dr, k*j + dc, c],  tokens row-major in (i, j).
// The padding zeros go through the LayerNorm.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "format/safetensors.h"
#include "ops/cpu/matmul.h"

namespace vila {

enum class ProjectorStageKind { kSpatialToChannel, kLayerNorm, kLinear, kGelu };

struct ProjectorStage {
  ProjectorStageKind kind = ProjectorStageKind::kGelu;
  std::string name;           // "layers.2" (for messages)
  int64_t factor = 0;         // kSpatialToChannel: k
  int64_t in_dim = 0;         // channels in
  int64_t out_dim = 0;        // channels out
  TensorView norm_w, norm_b;  // kLayerNorm: (in_dim)
  cpu::LinearWeight linear;   // kLinear: (out_dim, in_dim) + bias
};

// One entry of a type's Sequential: kind and argument (kSpatialToChannel: k; kLinear: out
// features; otherwise unused).
struct ProjectorStageSpec {
  ProjectorStageKind kind = ProjectorStageKind::kGelu;
  int64_t arg = 0;
};

// The Sequential of mm_projector_type `type` (the table above) for C input channels and an LLM
// of hidden size H. Unimplemented naming `where` (a config path, or the caller) for an unknown
// type. Shared by Projector::load and the GPU encoder's random-weight builder.
StatusOr<std::vector<ProjectorStageSpec>> projector_stage_specs(const std::string& type, int64_t C,
                                                                int64_t H,
                                                                const std::string& where);

// x (s, s, C) one item -> out (ceil(s/k)², k²C): the spatial-to-channel rearrangement above.
void spatial_to_channel(const float* x, int64_t s, int64_t c, int64_t k, float* out);

class Projector {
 public:
  // mm_projector_dir holds config.json (mm_projector_type) and model.safetensors. in_channels is
  // the top config's mm_hidden_size, llm_hidden its hidden_size. Unimplemented naming
  // mm_projector/config.json for an unknown type; NotFound / InvalidArgument naming the tensor.
  static StatusOr<std::unique_ptr<Projector>> load(const std::string& mm_projector_dir,
                                                   int64_t in_channels, int64_t llm_hidden);

  // in (n_items, Lin, C) -> out (n_items, tokens_out(Lin), H), items projected independently.
  // Lin must be a perfect square when the type has a spatial-to-channel stage.
  Status forward(const float* in, int64_t n_items, int64_t tokens_in, float* out) const;

  // Tokens out per item of tokens_in tokens (-1 if tokens_in is not a square and must be).
  int64_t tokens_out(int64_t tokens_in) const;
  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }
  const std::string& type() const { return type_; }
  const std::vector<ProjectorStage>& stages() const { return stages_; }

 private:
  Projector() = default;

  std::string type_;
  int64_t in_channels_ = 0, out_channels_ = 0;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::vector<ProjectorStage> stages_;
};

}  // namespace vila
