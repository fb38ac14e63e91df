// exp of x <= 0 (x - max in a softmax or log-sum-exp row) under AVX-512, in intrinsics: the
// same operations as vmath.h's exp_lanes, so the same bits, without the upper clamp (x <= 0
// needs none) and with 2^n as one vscalefps where exp_lanes builds it from integer shifts and
// two products (8 of its 28 instructions). Callers run it only under the AVX-512 variant.
#pragma once

#include <immintrin.h>

#include "cpu/isa.h"

namespace fc {

#ifdef FC_ISA_X86
// Not always_inline: the other variants' copies of a caller's loops hold calls to these too
// (never run), which the attribute would refuse to compile.
#define FC_EXP_AVX512 FC_TARGET_AVX512 inline

FC_EXP_AVX512 __m512 splat16(float v) { return _mm512_set1_ps(v); }

// exp(x) for x <= 0 or NaN. vscalefps rounds e * 2^n once, as exp_lanes's exact product then
// rounding one do, subnormal results included (checked against the AVX2 variant's softmax).
FC_EXP_AVX512 __m512 exp_nonpositive(__m512 x) {
  // max(-104, x) keeps a NaN x (vmaxps returns its second operand when either is NaN).
  const __m512 xc = _mm512_maskz_max_ps(0xFFFF, splat16(-104.0f), x);
  const __m512 nb = _mm512_fmadd_ps(xc, splat16(1.44269504088896341f), splat16(12582912.0f));
  const __m512 n = _mm512_sub_ps(nb, splat16(12582912.0f));
  const __m512 r0 = _mm512_fnmadd_ps(n, splat16(0.693359375f), xc);
  const __m512 r = _mm512_fnmadd_ps(n, splat16(-2.12194440e-4f), r0);
  __m512 p = splat16(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                        5.0000001201e-1f}) {
    p = _mm512_fmadd_ps(p, r, splat16(c));
  }
  const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), splat16(1.0f));
  return _mm512_maskz_scalef_ps(0xFFFF, e, n);
}
#endif

}  // namespace fc
