// Shared by every kernel and the binding: error helpers and the Tensor view.
// Kernels never exit or abort: bad arguments throw std::invalid_argument (ValueError in Python),
// wrong types throw fc::TypeError (TypeError), failed runtime calls std::runtime_error.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fc {

using Shape = std::vector<int64_t>;

struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

inline std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << (s.size() == 1 ? ",)" : ")");
  return os.str();
}

#define FC_CHECK(cond, ...) \
  do { if (!(cond)) throw std::invalid_argument(::fc::str(__VA_ARGS__)); } while (0)

// Sizes are checked against limits as saturating products: a * b for a, b >= 0, or INT64_MAX
// where the product would overflow, so a check never sees a wrapped value.
constexpr int64_t mul_sat(int64_t a, int64_t b) {
  return a != 0 && b > INT64_MAX / a ? INT64_MAX : a * b;
}

inline int64_t numel_sat(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n = mul_sat(n, d);
  return n;
}

// The most elements any array may have: byte offsets of float64 and int64 elements then fit in
// int64, the index type of every kernel. NumPy's own ceiling is the same.
constexpr int64_t kMaxNumel = INT64_MAX / 8;

// Declares a kernel's CPU and CUDA twins, name##_cpu<T> and name##_cuda<T>, with one parameter
// list: identical signatures by construction. CUDA twins launch on cuda::stream() and exist only
// in CUDA builds (the binding's FC_TWIN never names them otherwise).
#define FC_KERNEL(name, ...)                              \
  template <typename T> void name##_cpu(__VA_ARGS__);     \
  template <typename T> void name##_cuda(__VA_ARGS__)

// Functions both twins call (CPU code and device code): __host__ __device__ under nvcc.
#ifdef __CUDACC__
#define FC_HOST_DEVICE __host__ __device__
#else
#define FC_HOST_DEVICE
#endif

enum class DType { f32, f64, i64, u8 };
enum class Device { cpu, cuda };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    default: return "uint8";
  }
}

// A borrowed, C-contiguous array: the binding builds it from a NumPy buffer or a CUDA array
// interface after checking dtype and contiguity; C++ never owns array memory.
struct Tensor {
  void* ptr = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  Shape shape;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  template <typename T> T* data() const { return static_cast<T*>(ptr); }
};

}  // namespace fc
