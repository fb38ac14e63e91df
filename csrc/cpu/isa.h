// Instruction-set variants of the CPU's hot loops, chosen at run time. The wheel is compiled
// for baseline x86-64 (SSE2) so that it runs on any x86-64 CPU; a loop that matters is compiled
// again for AVX2 + FMA and for AVX-512 by with_isa(f), which runs f through a copy of it built
// for the variant in use (runtime.h: cpuid's best, or a lower one FASTCONV_CPU_ISA asks for).
//
// How: each runner below carries a target attribute (that instruction set for this one
// function) and `flatten`, which inlines every call in it, f's body and the helpers its loops
// call, so the whole loop is compiled, and vectorised, for that instruction set. Helpers stay
// ordinary inline functions: code for fewer instructions may be inlined into code for more.
// Calls that cannot be inlined (libm) stay calls to the baseline functions.
#pragma once

#include "runtime.h"

namespace fc {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FC_ISA_X86 1
// Each variant's instruction sets: also the target of a function written in that variant's
// intrinsics, which callers run only while cpu_isa() is that variant.
#define FC_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt")))
#define FC_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt")))

template <typename F>
FC_TARGET_AVX512 __attribute__((flatten)) void run_avx512(const F& f) {
  f();
}
template <typename F>
FC_TARGET_AVX2 __attribute__((flatten)) void run_avx2(const F& f) {
  f();
}
#endif

// f() compiled for the variant in use. Callers wrap the loop nest of one work item (a chunk,
// a row), below any OpenMP region, so that the check is made once per item.
template <typename F>
inline void with_isa(const F& f) {
#ifdef FC_ISA_X86
  switch (cpu_isa()) {
    case CpuIsa::avx512: return run_avx512(f);
    case CpuIsa::avx2: return run_avx2(f);
    default: break;
  }
#endif
  f();
}

}  // namespace fc
