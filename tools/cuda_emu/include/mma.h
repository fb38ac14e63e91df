// CPU emulation of nvcuda::wmma for the fiber emulator: every lane holds and computes the whole
// tile (duplicated work, identical results), so warp-collective semantics hold trivially.
#pragma once
#include <cstdint>
#include <cstring>
namespace nvcuda { namespace wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
struct row_major {}; struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { static constexpr int R = M, C = K; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { static constexpr int R = K, C = N; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { static constexpr int R = M, C = N; };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int R = dims<Use, M, N, K>::R, C = dims<Use, M, N, K>::C;
  static constexpr int num_elements = R * C;
  float x[R * C];  // row-major R x C
};
inline float __float_to_tf32(float v) {
  uint32_t u; std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) { u += 0xfffu + ((u >> 13) & 1u); u &= 0xffffe000u; }
  float r; std::memcpy(&r, &u, 4); return r;
}
template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) { for (auto& e : f.x) e = v; }
template <class Use, int M, int N, int K, class T>
void load_matrix_sync(fragment<Use, M, N, K, T, row_major>& f, const float* p, unsigned ldm) {
  for (int r = 0; r < f.R; ++r) for (int c = 0; c < f.C; ++c) f.x[r * f.C + c] = p[r * ldm + c];
}
template <class Use, int M, int N, int K, class T>
void load_matrix_sync(fragment<Use, M, N, K, T, col_major>& f, const float* p, unsigned ldm) {
  for (int r = 0; r < f.R; ++r) for (int c = 0; c < f.C; ++c) f.x[r * f.C + c] = p[c * ldm + r];
}
template <int M, int N, int K, class T, class L>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, T, L>& f, unsigned ldm,
                       layout_t layout) {
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
}
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC, class LC>
void mma_sync(fragment<accumulator, M, N, K, TC, LC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b,
              const fragment<accumulator, M, N, K, TC, LC>& c) {
  float out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; ++k)
        s += __float_to_tf32(a.x[i * K + k]) * __float_to_tf32(b.x[k * N + j]);
      out[i * N + j] = s;
    }
  for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}
}}  // namespace nvcuda::wmma
