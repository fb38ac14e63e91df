// Threads and build facts reported by fastconv.info().
#pragma once

#include <cstdint>
#include <string>

namespace fc {

// fastconv's OpenMP thread count, one value for the whole process: a count set from any
// thread applies to kernels called from every thread from their next call on (parallel.h).
// Default: OMP_NUM_THREADS, else the usable cores; always 1 without OpenMP. The BLAS is set to
// one thread once, when the module loads, and stays so inside fastconv's threads (blas.h).
void set_num_threads(int64_t n);
int get_num_threads();

std::string openmp_version();  // empty without OpenMP
std::string simd_compiled();   // the instruction sets this build was compiled for
std::string simd_cpu();        // what this CPU offers at run time
std::string compiler();

// The instruction-set variant of the CPU's hot loops (cpu/isa.h): baseline (SSE2, any x86-64),
// avx2 (AVX2 + FMA) or avx512 (AVX-512 F/BW/DQ/VL). The default is the best this CPU has;
// set_cpu_isa picks a lower one (FASTCONV_CPU_ISA at import, and tests that cover each
// variant). Process-wide (an atomic), read once per work item; results may differ between
// variants in the last bits (FMA contraction, wider partial sums), never between runs.
enum class CpuIsa : int { baseline = 0, avx2 = 1, avx512 = 2 };
CpuIsa cpu_isa();
CpuIsa cpu_isa_best();  // the best variant this CPU and build support
const char* cpu_isa_name(CpuIsa isa);
// By name; ValueError for an unknown name or one this CPU cannot run.
void set_cpu_isa(const std::string& name);

bool cuda_built();
std::string cuda_archs();
std::string cuda_version();
// "NVIDIA H100 80GB HBM3 (sm_90), driver 13.0" or a reason why there is none.
std::string cuda_device();

// TF32 tensor cores for float32 convolution and linear on the GPU: off unless the user asks,
// since it rounds operands to 10 mantissa bits. Process-wide (an atomic), read at each launch.
void set_allow_tf32(bool allow);
bool allow_tf32();

namespace cuda {
// The stream the CUDA twins launch on for this thread, as a CUDA array interface "stream"
// value (0 or 1: legacy default stream, 2: per-thread default stream, else a cudaStream_t).
// Set by the binding just before it calls a twin, to the stream of the call's arrays
// (bind/generic.h's Launch); defined only in CUDA builds.
void set_stream(std::uintptr_t stream);
}  // namespace cuda

}  // namespace fc
