// Element math the CPU's vector loops call: c ? a : b as a blend, and exp, expm1 and tanh.
// For float these are branch-free Cephes-style versions that gcc vectorises (a libm call keeps
// a loop scalar; libm's vector forms need -ffast-math), within 2 ulp of the exact result, with
// NaN, +-inf, overflow and subnormal results as libm gives them; for double they are libm's.
// A loop and its scalar remainder call the same function, so every element of a kernel rounds
// alike. Compiled into each instruction-set variant by with_isa (isa.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace fc {

// Vector loops need these helpers inlined: with the module's link-time optimisation
// gcc otherwise may keep them as calls, and a call keeps a loop scalar.
#if defined(__GNUC__)
#define FC_INLINE inline __attribute__((always_inline))
#else
#define FC_INLINE inline
#endif

template <typename T> struct Bits;
template <> struct Bits<float> { using U = uint32_t; };
template <> struct Bits<double> { using U = uint64_t; };

// c ? a : b as a bit-mask blend of two computed values: gcc will not if-convert
// `c ? a : a * s` (under the default -ftrapping-math the product must not be speculated),
// so such a ternary keeps its loop scalar, while this blend vectorises.
template <typename T>
FC_INLINE T select(bool c, T a, T b) {
  using U = typename Bits<T>::U;
  U ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const U m = U(0) - U(c);
  const U r = (ua & m) | (ub & ~m);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

// 2^n for n in [-126, 127], built from its bit pattern.
FC_INLINE float pow2i(int32_t n) {
  const uint32_t u = uint32_t(n + 127) << 23;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

FC_INLINE double exp_of(double x) { return std::exp(x); }
FC_INLINE double expm1_of(double x) { return std::expm1(x); }
FC_INLINE double tanh_of(double x) { return std::tanh(x); }

FC_INLINE float exp_of(float x) {
  constexpr float hi = 88.72283935546875f, lo = -103.97208404541015625f;
  float xc = select(x < lo, lo, x);
  xc = select(xc > hi, hi, xc);
  xc = select(x != x, 0.0f, xc);
  // round(xc / ln 2) by the 1.5 * 2^23 trick (exact for |v| < 2^22), then r = xc - n ln 2 in
  // two parts so that r keeps full precision.
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t ni = int32_t(n), n1 = ni >> 1;
  float y = e * pow2i(n1) * pow2i(ni - n1);
  y = select(x > hi, std::numeric_limits<float>::infinity(), y);
  y = select(x < lo, 0.0f, y);
  return select(x != x, x, y);
}

FC_INLINE float expm1_of(float x) {
  float t = 1.0f / 3628800;
  t = t * x + 1.0f / 362880;
  t = t * x + 1.0f / 40320;
  t = t * x + 1.0f / 5040;
  t = t * x + 1.0f / 720;
  t = t * x + 1.0f / 120;
  t = t * x + 1.0f / 24;
  t = t * x + 1.0f / 6;
  t = t * x + 0.5f;
  // Taylor series below 0.5 in magnitude, where exp(x) - 1 would cancel.
  const float small = (t * x) * x + x;
  const float big = exp_of(x) - 1.0f;
  return select(x == 0.0f, x, select(std::fabs(x) < 0.5f, small, big));
}

FC_INLINE float tanh_of(float x) {
  const float a = std::fabs(x), z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = 1.0f - 2.0f / (exp_of(2.0f * a) + 1.0f);
  const float r = select(a < 0.625f, small, select(x < 0.0f, -big, big));
  return select((x != x) | (x == 0.0f), x, r);
}

}  // namespace fc
