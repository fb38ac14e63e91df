// Threads and build facts reported by fastconv.info().
#pragma once

#include <string>

namespace fc {

// Sets fastconv's OpenMP threads; the BLAS stays single-threaded inside them (see blas.h).
void set_num_threads(int n);
int get_num_threads();

std::string openmp_version();  // empty without OpenMP
std::string simd_compiled();   // the instruction sets this build was compiled for
std::string simd_cpu();        // what this CPU offers at run time
std::string compiler();

bool cuda_built();
std::string cuda_archs();
std::string cuda_version();
// "NVIDIA H100 80GB HBM3 (sm_90), driver 13.0" or a reason why there is none.
std::string cuda_device();

}  // namespace fc
