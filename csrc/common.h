// Shared by every kernel and the binding: error helpers and the Tensor view.
// Kernels never exit or abort: bad arguments throw std::invalid_argument (ValueError in Python),
// wrong types throw fc::TypeError (TypeError), failed runtime calls std::runtime_error.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
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

// "32.0 MiB (33554432 bytes)".
inline std::string bytes_str(int64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  std::ostringstream os;
  os.precision(v < 10 ? 2 : 1);
  os << std::fixed << v << ' ' << units[u];
  if (u > 0) os << " (" << bytes << " bytes)";
  return os.str();
}

// A workspace the machine cannot provide. A std::bad_alloc, so that pybind11 raises MemoryError,
// whose message (what()) names the kernel, the workspace and the bytes requested.
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(std::string msg) : msg_(std::move(msg)) {}
  const char* what() const noexcept override { return msg_.c_str(); }

 private:
  std::string msg_;
};

[[noreturn]] inline void out_of_memory(const char* what, int64_t count, int64_t elem_bytes) {
  const int64_t bytes = mul_sat(count, elem_bytes);
  throw OutOfMemory(str(what, ": cannot allocate ",
                        bytes == INT64_MAX ? str(count, " elements of ", elem_bytes, " bytes")
                                           : bytes_str(bytes),
                        " of working memory"));
}

// n uninitialised elements of T (null for n <= 0); OutOfMemory naming `what` and the bytes
// when they cannot be had. Never call it inside a parallel region: an exception must not leave
// one, so workspaces are allocated before it and shared out by thread number.
template <typename T>
std::unique_ptr<T[]> alloc_uninit(int64_t n, const char* what) {
  if (n <= 0) return nullptr;
  if (n > INT64_MAX / int64_t(sizeof(T))) out_of_memory(what, n, sizeof(T));
  try {
    return std::unique_ptr<T[]>(new T[size_t(n)]);
  } catch (const std::bad_alloc&) {
    out_of_memory(what, n, sizeof(T));
  }
}

// n value-initialised (zero) elements of T, as a vector; errors as alloc_uninit.
template <typename T>
std::vector<T> alloc_vector(int64_t n, const char* what) {
  if (n <= 0) return {};
  if (n > INT64_MAX / int64_t(sizeof(T))) out_of_memory(what, n, sizeof(T));
  try {
    return std::vector<T>(size_t(n));
  } catch (const std::bad_alloc&) {
    out_of_memory(what, n, sizeof(T));
  } catch (const std::length_error&) {  // more than vector::max_size()
    out_of_memory(what, n, sizeof(T));
  }
}

// Declares a kernel's CPU and CUDA twins, name##_cpu<T> and name##_cuda<T>, with one parameter
// list: identical signatures by construction. CUDA twins launch on cuda::stream() and exist only
// in CUDA builds (the binding's FC_TWIN never names them otherwise).
#define FC_KERNEL(name, ...)                              \
  template <typename T> void name##_cpu(__VA_ARGS__);     \
  template <typename T> void name##_cuda(__VA_ARGS__)

// Each family header declares its kernels once, as an op list: a macro FC_<FAMILY>_OPS(X, T)
// calling X(name, kind, parameters...) per kernel, parameters written in terms of T. `kind`
// names how the binding reads the kernel's arguments (its class in csrc/bind). The header
// expands the list with FC_DECLARE (both twins' declarations), cpu/<family>.cpp with
// FC_INSTANTIATE_CPU and cuda/<family>.cu with FC_INSTANTIATE_CUDA, once per float type:
//   FC_ACT_OPS(FC_INSTANTIATE_CPU, float)
// An explicit instantiation deduces the template argument from the parameter types, so the
// list needs no separate type argument. Comments inside the list are /* */: a // comment would
// swallow the rest of the macro's spliced line.
#define FC_DECLARE(name, kind, ...) FC_KERNEL(name, __VA_ARGS__);
#define FC_INSTANTIATE_CPU(name, kind, ...) template void name##_cpu(__VA_ARGS__);
#define FC_INSTANTIATE_CUDA(name, kind, ...) template void name##_cuda(__VA_ARGS__);

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
  // A CUDA array's stream, as its CUDA array interface names it (0 on the CPU): the launch
  // stream of a call the binding makes with this array as its primary one.
  std::uintptr_t stream = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  template <typename T> T* data() const { return static_cast<T*>(ptr); }
};

}  // namespace fc
