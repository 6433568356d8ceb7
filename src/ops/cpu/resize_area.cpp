#include "ops/cpu/resize_area.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"

namespace vila::cpu {

Status resize_area(const TensorView& out, const TensorView& in) {
  VILA_RETURN_IF_ERROR(check_f32("resize_area", "in", in));
  VILA_RETURN_IF_ERROR(check_f32("resize_area", "out", out));
  if (in.shape.rank != 3 || out.shape.rank != 3 || in.dim(2) != out.dim(2) || in.dim(0) <= 0 ||
      in.dim(1) <= 0) {
    return invalid_argument("resize_area: need in (Hi, Wi, C) and out (Ho, Wo, C); got in " +
                            in.shape.to_string() + ", out " + out.shape.to_string());
  }
  const int64_t hi = in.dim(0), wi = in.dim(1), c = in.dim(2), ho = out.dim(0), wo = out.dim(1);
  const float* src = in.as<const float>();
  float* dst = out.f32();
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> sum(static_cast<size_t>(c));
    for (int64_t oh = begin; oh < end; ++oh) {
      const int64_t ih0 = area_window_begin(oh, hi, ho), ih1 = area_window_end(oh, hi, ho);
      const auto kh = static_cast<float>(ih1 - ih0);
      for (int64_t ow = 0; ow < wo; ++ow) {
        const int64_t iw0 = area_window_begin(ow, wi, wo), iw1 = area_window_end(ow, wi, wo);
        const auto kw = static_cast<float>(iw1 - iw0);
        std::fill(sum.begin(), sum.end(), 0.0f);
        for (int64_t ih = ih0; ih < ih1; ++ih) {
          for (int64_t iw = iw0; iw < iw1; ++iw) {
            const float* px = src + (ih * wi + iw) * c;
            for (int64_t ch = 0; ch < c; ++ch) sum[static_cast<size_t>(ch)] += px[ch];
          }
        }
        float* o = dst + (oh * wo + ow) * c;
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = sum[static_cast<size_t>(ch)] / kh / kw;
      }
    }
  };
  if (ho * wo * c < (int64_t{1} << 14)) {
    run(0, ho);
  } else {
    ThreadPool::global().parallel_for(ho, run);
  }
  return ok_status();
}

}  // namespace vila::cpu
