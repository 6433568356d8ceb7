// Sequence packing: several samples share one row of T tokens, each token carrying the id of its
// sample (segment). Segment ids are non-decreasing along the row (0 0 0 1 1 2 ...), so a segment
// is a contiguous run of tokens. Positions restart at 0 in every segment (RoPE), and attention
// stays inside a segment (attention.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace vila::train {

// OK when segments[0..T) is non-decreasing (or null, meaning one segment); else InvalidArgument
// naming the first position where the id decreases.
Status check_segments(const int32_t* segments, int64_t t_count);

// positions[t] = t - (first token of t's segment). segments may be null (positions 0..T-1).
Status positions_from_segments(const int32_t* segments, int64_t t_count, int64_t* positions);

// Per token, [begin, end) of its segment. segments may be null (one segment [0, T)).
struct SegmentBounds {
  std::vector<int64_t> begin;  // (T)
  std::vector<int64_t> end;    // (T)
};
StatusOr<SegmentBounds> segment_bounds(const int32_t* segments, int64_t t_count);

}  // namespace vila::train
