// Deterministic cross-block sums for the training kernels. A gradient that several blocks add to
// (a norm weight's dw summed over rows, a bias's column sums, the global sum of squares) used to
// meet in fp32 atomics, whose order changes from run to run: two identical CUDA runs then differed
// in the last bits, and a stopped and resumed run could not equal an uninterrupted one. Now each
// block writes its partial row to a workspace and one kernel adds the partials in block order:
//   out[c] += Σ_{g = 0 .. groups-1} partials[g · n + c]      (a fixed order: bitwise reproducible;
//             32 lanes per column each sum every 32nd group, then a fixed tree)
// The workspace is one device buffer per process, grown (after a device sync) to the largest
// request and never shrunk; the training kernels use it on one stream at a time, so a kernel's
// partials are read by its own reduction before the next kernel writes them (stream order).
// Host-callable, no CUDA headers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

// At least `bytes` of device memory for partial sums (see above). Not for concurrent streams.
StatusOr<void*> partials_workspace(size_t bytes);

// out (n) f32 [+]= Σ_g partials (groups, n) f32 in a fixed order; out written (not added to) when
// accumulate is false.
Status add_partials(float* out, const float* partials, int64_t groups, int64_t n, bool accumulate,
                    void* stream);

}  // namespace vila::cuda
