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

// A strided layer's adjoint through phase-split rows: col2im_cpu adds a kernel column's row
// of Q values into every sw-th input column, one scalar at a time (with the zeroing of the
// input before it, 32 % of AlexNet conv1's input gradient; one thread 14.4 -> 12.0 ms this
// way). Kept as sw phases of `len` columns each (padded column x = j * sw + ph at
// ph * len + j), an input row takes kernel column s's values contiguously, at phase
// s*dw % sw from column s*dw / sw on; the phases are put back in column order once per input
// row at the end. Each input pixel still sums its (r, s) terms in col2im_cpu's order from
// zero, so both give the same bits.
inline int64_t phase_len(const Conv2dGeom& g) {
  const int64_t sw = g.stride_w;
  return std::max(g.Q + (g.S - 1) * g.dil_w / sw, (g.pad_l + g.W + sw - 1) / sw);
}

// buf[c - c0, h] (H phase-split rows of sw * len per channel, for channels [c0, c1)) += the
// adjoint of im2col_cpu over output rows [p0, p1), col packed as col2im_cpu's.
template <typename T>
void col2im_phased(T* buf, const T* col, const Conv2dGeom& g, int64_t c0, int64_t c1,
                   int64_t p0, int64_t p1, int64_t len) {
  const int64_t Q = g.Q, sw = g.stride_w, row = sw * len, ld = (p1 - p0) * Q;
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        T* at = buf + (c - c0) * g.H * row + s * g.dil_w % sw * len + s * g.dil_w / sw;
        const T* src = col + (((c - c0) * g.R + r) * g.S + s) * ld;
        for (int64_t p = p0; p < p1; ++p, src += Q) {
          const int64_t h = p * g.stride_h - g.pad_t + r * g.dil_h;
          if (h < 0 || h >= g.H) continue;
          T* dst = at + h * row;
#pragma omp simd
          for (int64_t q = 0; q < Q; ++q) dst[q] += src[q];
        }
      }
    }
  }
}

// out[k * SW + ph] = b[ph * len + k] for k < n, ph < SW: with SW known, a loop GCC
// vectorises (its interleaving shuffles); a run-time phase count made it a scalar loop with a
// multiply per element (60 % of col2im_phased's time on ResNet's 3x3 stride-2 layer).
template <int SW, typename T>
void interleave_phases(T* out, const T* b, int64_t len, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
#pragma GCC unroll 4
    for (int ph = 0; ph < SW; ++ph) out[k * SW + ph] = b[ph * len + k];
  }
}

// inp[c0:c1, H, W] = col2im_phased's rows in column order.
template <typename T>
void unsplit_phases(T* inp, const T* buf, const Conv2dGeom& g, int64_t c0, int64_t c1,
                    int64_t len) {
  const int64_t sw = g.stride_w, W = g.W;
  // Input column x is padded column x + pad_l: whole groups of sw from x0 on.
  const int64_t x0 = std::min(W, (sw - g.pad_l % sw) % sw), n = (W - x0) / sw;
  const int64_t j0 = (x0 + g.pad_l) / sw, x1 = x0 + n * sw;
  const auto at = [&](const T* b, int64_t x) {
    const int64_t xp = x + g.pad_l;
    return b[xp % sw * len + xp / sw];
  };
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t h = 0; h < g.H; ++h) {
      const T* b = buf + ((c - c0) * g.H + h) * sw * len;
      T* out = inp + (c * g.H + h) * W;
      for (int64_t x = 0; x < x0; ++x) out[x] = at(b, x);
      switch (sw) {
        case 2: interleave_phases<2>(out + x0, b + j0, len, n); break;
        case 3: interleave_phases<3>(out + x0, b + j0, len, n); break;
        case 4: interleave_phases<4>(out + x0, b + j0, len, n); break;
        default:
          for (int64_t ph = 0; ph < sw; ++ph) {
            for (int64_t k = 0; k < n; ++k) out[x0 + k * sw + ph] = b[ph * len + j0 + k];
          }
      }
      for (int64_t x = x1; x < W; ++x) out[x] = at(b, x);
    }
  }
}

}  // namespace fc
