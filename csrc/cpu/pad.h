// A plane copied into a zero-padded buffer: the direct and depthwise convolutions read their
// windows from one (no bounds checks in their inner loops).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace fc {

// buf[i, j] = src[top + i, j - ow] for i < rows, j < Wb, zero outside the H x W plane src.
template <typename T>
void pad_plane(T* buf, const T* src, int64_t H, int64_t W, int64_t top, int64_t rows, int64_t ow,
               int64_t Wb) {
  const int64_t j0 = std::clamp<int64_t>(ow, 0, Wb), j1 = std::clamp(W + ow, j0, Wb);
  for (int64_t i = 0; i < rows; ++i) {
    T* b = buf + i * Wb;
    const int64_t h = top + i;
    if (h < 0 || h >= H) {
      std::fill(b, b + Wb, T(0));
      continue;
    }
    std::fill(b, b + j0, T(0));
    std::memcpy(b + j0, src + h * W + (j0 - ow), sizeof(T) * (j1 - j0));
    std::fill(b + j1, b + Wb, T(0));
  }
}

}  // namespace fc
