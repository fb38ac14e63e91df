// Element math the CPU's vector loops call: c ? a : b as a blend, and exp, expm1 and tanh.
// For float these are branch-free Cephes-style versions that gcc vectorises (a libm call keeps
// a loop scalar; libm's vector forms need -ffast-math), within 2.5 ulp of the exact result
// (checked over every float below 11 in magnitude, each variant), with NaN, +-inf, overflow and
// subnormal results as libm gives them; for double they are libm's. Clamps and selects are what
// such a loop spends most of its instructions on, so each is there for a reason said beside it.
// A loop and its scalar remainder call the same function, so every element of a kernel rounds
// alike. Compiled into each instruction-set variant by with_isa (isa.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

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

// The same blend for the lanes of a GCC vector V, under a mask M of its compares (V < V).
template <typename V, typename M>
FC_INLINE V select(M mask, V a, V b) {
  return reinterpret_cast<V>((reinterpret_cast<M>(a) & mask) | (reinterpret_cast<M>(b) & ~mask));
}

// A float's bits as int32, or a float vector's as its int32 lanes; float_of<V> goes back.
template <typename V>
FC_INLINE auto bits_of(V v) {
  if constexpr (std::is_same_v<V, float>) {
    int32_t u;
    std::memcpy(&u, &v, sizeof u);
    return u;
  } else {
    using M = decltype(v < v);
    M u;
    std::memcpy(&u, &v, sizeof u);
    return u;
  }
}

template <typename V, typename I>
FC_INLINE V float_of(I u) {
  V v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// 2^n for n in [-126, 127] (an int32, or int32 lanes), built from its bit pattern. The shift
// is unsigned: a NaN's garbage n may be negative, and shifting that left is undefined.
template <typename V, typename I>
FC_INLINE V pow2i(I n) {
  if constexpr (std::is_same_v<V, float>) {
    return float_of<V>(uint32_t(n + 127) << 23);
  } else {
    typedef uint32_t U __attribute__((vector_size(sizeof(I))));
    return float_of<V>(reinterpret_cast<U>(n + 127) << 23);
  }
}

FC_INLINE double exp_of(double x) { return std::exp(x); }
FC_INLINE double expm1_of(double x) { return std::expm1(x); }
FC_INLINE double tanh_of(double x) { return std::tanh(x); }

// exp of a float, or of each lane of a GCC float vector (loss.cpp's rows).
template <typename V>
FC_INLINE V exp_lanes(V x) {
  // The clamp keeps n (below) in [-150, 128], where e * 2^(n/2) * 2^(n - n/2) overflows to inf
  // and underflows through the subnormals to 0 as the exact result does: the ends need no
  // select. A NaN passes the clamp (its compares are false) and propagates through e.
  const V zero{};
  V xc = select(x < -104.0f, zero - 104.0f, x);
  xc = select(xc > 89.0f, zero + 89.0f, xc);
  // round(xc / ln 2) by the 1.5 * 2^23 trick (exact for |v| < 2^22): the sum's low bits are
  // then n as an integer, read without a conversion (which a NaN would make undefined; its
  // e below is NaN anyway). r = xc - n ln 2 in two parts keeps full precision.
  const V nb = xc * 1.44269504088896341f + 12582912.0f;
  const V n = nb - 12582912.0f;
  const V r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  V p = zero + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V e = p * r * r + r + 1.0f;
  const auto ni = bits_of(nb) - 0x4B400000, n1 = ni >> 1;
  return e * pow2i<V>(n1) * pow2i<V>(ni - n1);
}

FC_INLINE float exp_of(float x) { return exp_lanes(x); }

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
  // tanh |x| = m / (m + 2) with m = expm1(2 |x|), then x's sign put back. m = 2^n (expm1(r) +
  // 1) - 1 = 2^n expm1(r) + (2^n - 1), with r = 2 |x| - n ln 2: for n = 0 that is expm1(r)
  // itself, accurate near 0, so no branch is needed. Above |x| = 9 the quotient rounds to 1:
  // clamping there keeps 2^n a float (n <= 26). A NaN passes the clamp and propagates.
  const float a = std::fabs(x), v = 2.0f * select(a > 9.0f, 9.0f, a);
  const float nb = v * 1.44269504088896341f + 12582912.0f;
  const float n = nb - 12582912.0f;
  const float r = (v - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float em_r = p * r * r + r;
  const float s = pow2i<float>(bits_of(nb) - 0x4B400000);
  const float m = s * em_r + (s - 1.0f);
  const float t = m / (m + 2.0f);
  uint32_t ut, ux;
  std::memcpy(&ut, &t, sizeof t);
  std::memcpy(&ux, &x, sizeof x);
  ut |= ux & 0x80000000u;
  float out;
  std::memcpy(&out, &ut, sizeof out);
  return out;
}

}  // namespace fc
