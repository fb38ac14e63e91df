// A plane copied into a zero-padded buffer: the direct and depthwise convolutions read their
// windows from one (no bounds checks in their inner loops).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace fc {

// dst[0, n) = src[0, n), n bytes, n a multiple of 4. A padded buffer's rows are short (18
// floats for a 14-wide plane under a 5x5 kernel), and a library call per row (with one more per
// padding run) took a tenth of fashion_cnn conv2's input gradient: fixed-size copies, the last
// one overlapping the one before, compile to a few vector moves. Long rows take the library's.
inline void copy_bytes(char* dst, const char* src, size_t n) {
  if (n > 128) {
    std::memcpy(dst, src, n);
  } else if (n >= 32) {
    // No loop: GCC would turn one back into a library call.
    std::memcpy(dst, src, 32);
    if (n > 64) std::memcpy(dst + 32, src + 32, 32);
    if (n > 96) std::memcpy(dst + 64, src + 64, 32);
    std::memcpy(dst + n - 32, src + n - 32, 32);
  } else if (n >= 16) {
    std::memcpy(dst, src, 16);
    std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  }
}

// dst[0, n) = 0, n bytes, as copy_bytes.
inline void zero_bytes(char* dst, size_t n) {
  static constexpr char zeros[128] = {};
  if (n > 128) {
    std::memset(dst, 0, n);
  } else {
    copy_bytes(dst, zeros, n);
  }
}

// buf[i, j] = src[top + i, j - ow] for i < rows, j < Wb, zero outside the H x W plane src.
// pixels_only: buf already holds this geometry's zeros (an earlier call with the same H, W,
// top, rows, ow and Wb), so only the plane's own pixels are copied.
template <typename T>
void pad_plane(T* buf, const T* src, int64_t H, int64_t W, int64_t top, int64_t rows, int64_t ow,
               int64_t Wb, bool pixels_only = false) {
  const int64_t j0 = std::clamp<int64_t>(ow, 0, Wb), j1 = std::clamp(W + ow, j0, Wb);
  const auto bytes = [](int64_t n) { return size_t(n) * sizeof(T); };
  for (int64_t i = 0; i < rows; ++i) {
    char* b = reinterpret_cast<char*>(buf + i * Wb);
    const int64_t h = top + i;
    if (h < 0 || h >= H) {
      if (!pixels_only) zero_bytes(b, bytes(Wb));
      continue;
    }
    if (!pixels_only) zero_bytes(b, bytes(j0));
    copy_bytes(b + bytes(j0), reinterpret_cast<const char*>(src + h * W + (j0 - ow)),
               bytes(j1 - j0));
    if (!pixels_only) zero_bytes(b + bytes(j1), bytes(Wb - j1));
  }
}

}  // namespace fc
