// Arena: zeroed aligned allocations, reset, and moves (a move-assigned arena frees its own blocks:
// the cpu-asan preset's LeakSanitizer fails this test if it does not).
#include "core/arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>

namespace vila {
namespace {

TEST(Arena, AllocIsZeroedAndAligned) {
  Arena a("test", 1024);
  auto* p = static_cast<uint8_t*>(a.alloc(100));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(p[i], 0);
  EXPECT_EQ(a.bytes_used(), 128u);
  a.reset();
  EXPECT_EQ(a.bytes_used(), 0u);
}

TEST(Arena, MoveAssignmentTakesTheBlocksAndFreesItsOwn) {
  Arena a("a", 256);
  a.alloc(64);
  Arena b("b", 256);
  b.alloc(200);
  b = std::move(a);
  EXPECT_EQ(b.bytes_used(), 64u);
  EXPECT_EQ(b.name(), "a");
  Arena c(std::move(b));
  EXPECT_EQ(c.bytes_used(), 64u);
}

}  // namespace
}  // namespace vila
