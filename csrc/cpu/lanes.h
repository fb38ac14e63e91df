// The float vectors of the direct convolutions (conv_direct.cpp, conv_rows.cpp): GCC vector
// types of one AVX-512 or AVX2 register, lowered inside the variant's runners (isa.h).
#pragma once

#include <cstdint>

namespace fc {

// Loads and stores go through memcpy, so the types keep their natural alignment.
typedef float V16 __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));

template <typename V>
constexpr int64_t kLanes = sizeof(V) / sizeof(float);

}  // namespace fc
