// Pillow-exact resampling: the result of `PIL.Image.resize((width, height))` on an RGB image with
// the default filter (BICUBIC, a = -0.5, antialiased: support scales with the reduction factor,
// reducing_gap None), including Pillow's 22-bit fixed-point coefficients and rounding.
// Rows of both passes are spread over the vision thread pool (vision_parallel_for); every output
// row is computed exactly as in one thread, so the result does not depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>

#include "core/status.h"
#include "vision/image.h"

namespace vila {

// Calls fn(begin, end) over disjoint chunks covering [0, n) on a process-wide pool reserved for
// image preprocessing (sized like ThreadPool::global(): $VILA_NUM_THREADS or the core count).
// Runs fn(0, n) on the calling thread when n < min_parallel, or when the pool is busy (another
// thread is preprocessing, or this is a nested call from inside fn): never blocks on the pool.
void vision_parallel_for(int64_t n, int64_t min_parallel,
                         const std::function<void(int64_t, int64_t)>& fn);

// InvalidArgument for a non-positive size or an empty source. Same size returns a copy.
StatusOr<Image> resize_bicubic(const Image& src, int width, int height);

}  // namespace vila
