// Segment checks, per-segment positions and bounds for packed sequences (see packing.h).
#include "train/packing.h"

#include <string>

namespace vila::train {

Status check_segments(const int32_t* segments, int64_t t_count) {
  if (t_count < 0) return invalid_argument("segments: negative token count");
  if (segments == nullptr) return ok_status();
  for (int64_t t = 1; t < t_count; ++t) {
    if (segments[t] < segments[t - 1]) {
      return invalid_argument("segments: id " + std::to_string(segments[t]) + " at position " +
                              std::to_string(t) + " is below the previous id " +
                              std::to_string(segments[t - 1]) +
                              " (segment ids must be non-decreasing)");
    }
  }
  return ok_status();
}

Status positions_from_segments(const int32_t* segments, int64_t t_count, int64_t* positions) {
  VILA_RETURN_IF_ERROR(check_segments(segments, t_count));
  if (t_count > 0 && positions == nullptr) return invalid_argument("segments: positions is null");
  int64_t start = 0;
  for (int64_t t = 0; t < t_count; ++t) {
    if (segments != nullptr && t > 0 && segments[t] != segments[t - 1]) start = t;
    positions[t] = t - start;
  }
  return ok_status();
}

StatusOr<SegmentBounds> segment_bounds(const int32_t* segments, int64_t t_count) {
  VILA_RETURN_IF_ERROR(check_segments(segments, t_count));
  SegmentBounds b;
  b.begin.resize(static_cast<size_t>(t_count));
  b.end.resize(static_cast<size_t>(t_count));
  int64_t start = 0;
  for (int64_t t = 0; t <= t_count; ++t) {
    const bool boundary =
        t == t_count || (segments != nullptr && t > 0 && segments[t] != segments[t - 1]);
    if (!boundary) continue;
    for (int64_t u = start; u < t; ++u) {
      b.begin[static_cast<size_t>(u)] = start;
      b.end[static_cast<size_t>(u)] = t;
    }
    start = t;
  }
  return b;
}

}  // namespace vila::train
