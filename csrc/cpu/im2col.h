// im2col and its adjoint col2im on the CPU, header-only: only cpu/conv.cpp uses them (conv2d,
// conv_transpose2d, unfold, fold), so they need no instantiation list of their own. Both walk
// the same index map col[(c, r, s), (p, q)] <-> inp[c, p*sh - pt + r*dh, q*sw - pl + s*dw]; for
// each (c, r, s) the valid q form one interval, so rows copy (or add) in contiguous runs.
#pragma once

#include <algorithm>
#include <cstring>

#include "geometry.h"

namespace fc {

// Valid output columns [lo, hi) for kernel column s: 0 <= q*sw + off < W.
inline void valid_cols(const Conv2dGeom& g, int64_t s, int64_t& off, int64_t& lo, int64_t& hi) {
  off = s * g.dil_w - g.pad_l;
  lo = off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w;
  hi = g.W - 1 - off < 0 ? 0 : std::min(g.Q, (g.W - 1 - off) / g.stride_w + 1);
  lo = std::min(lo, hi);
}

// col[(c1-c0)*R*S, (p1-p0)*Q] = the windows of channels [c0, c1) of one image inp[C, H, W]
// for output rows [p0, p1); zero where a window reads padding. Rows of col are ld apart
// (default (p1-p0)*Q: packed), so images can sit side by side in one wider matrix.
template <typename T>
void im2col_cpu(T* col, const T* inp, const Conv2dGeom& g, int64_t c0, int64_t c1, int64_t p0,
                int64_t p1, int64_t ld = -1) {
  const int64_t Q = g.Q, sw = g.stride_w;
  if (ld < 0) ld = (p1 - p0) * Q;
  for (int64_t c = c0; c < c1; ++c) {
    const T* plane = inp + c * g.HW();
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        int64_t off, lo, hi;
        valid_cols(g, s, off, lo, hi);
        T* dst = col + (((c - c0) * g.R + r) * g.S + s) * ld;
        for (int64_t p = p0; p < p1; ++p, dst += Q) {
          const int64_t h = p * g.stride_h - g.pad_t + r * g.dil_h;
          if (h < 0 || h >= g.H) {
            std::fill(dst, dst + Q, T(0));
            continue;
          }
          const T* src = plane + h * g.W + off;
          // Plain loops rather than memcpy/fill: a row is often a dozen elements, where a
          // library call costs more than the copy.
#pragma omp simd
          for (int64_t q = 0; q < lo; ++q) dst[q] = T(0);
          if (sw == 1) {
#pragma omp simd
            for (int64_t q = lo; q < hi; ++q) dst[q] = src[q];
          } else {
            for (int64_t q = lo; q < hi; ++q) dst[q] = src[q * sw];
          }
#pragma omp simd
          for (int64_t q = hi; q < Q; ++q) dst[q] = T(0);
        }
      }
    }
  }
}

// inp[c0:c1, H, W] += the adjoint of im2col_cpu over the same channels and rows.
template <typename T>
void col2im_cpu(T* inp, const T* col, const Conv2dGeom& g, int64_t c0, int64_t c1, int64_t p0,
                int64_t p1, int64_t ld = -1) {
  const int64_t Q = g.Q, sw = g.stride_w;
  if (ld < 0) ld = (p1 - p0) * Q;
  for (int64_t c = c0; c < c1; ++c) {
    T* plane = inp + c * g.HW();
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        int64_t off, lo, hi;
        valid_cols(g, s, off, lo, hi);
        const T* src = col + (((c - c0) * g.R + r) * g.S + s) * ld;
        for (int64_t p = p0; p < p1; ++p, src += Q) {
          const int64_t h = p * g.stride_h - g.pad_t + r * g.dil_h;
          if (h < 0 || h >= g.H) continue;
          T* dst = plane + h * g.W + off;
          for (int64_t q = lo; q < hi; ++q) dst[q * sw] += src[q];
        }
      }
    }
  }
}

}  // namespace fc
