// The generic binder: one registration per op-list entry. A family's op list (FC_<FAMILY>_OPS,
// see common.h) names each kernel's kind; the kind is a class here or in bind/<family>.cpp that
// reads the Python arguments by role (outputs, saved, inputs), checks them once, and returns
// what the twin needs. bind_op then does the rest, the same for every op:
//   - the Python signature is the kind's arrays followed by the twin's trailing scalars
//     (those after Kind::kArrays kernel parameters), so a new scalar needs no binding code;
//   - outputs are passed in, or the binding makes them through the caller's allocator
//     (allocate(), binding.h) once it knows their shape; either way it returns them;
//   - the GIL is released, the twin picked by device and dtype, and called on the stream of
//     the call's arrays, set explicitly (Launch) rather than as a side effect of reading them.
// A family is on it with: a kind class per argument layout, then
//   FC_<FAMILY>_OPS(FC_BIND_OP, T)
// plus a check() overload (OpTag, below) for any rule on an op's scalars. bind/act.cpp is the
// model: its kinds cover elementwise ops (out, inp, n), their gradients, and row reductions.
#pragma once

#include <cstring>
#include <string>
#include <tuple>
#include <utility>

#include "bind/binding.h"
#include "runtime.h"

namespace fc::bind {

// Where a twin runs: the device of the call's arrays and, for CUDA, the stream their CUDA
// array interface named (Tensor::stream). Made from the call's primary array.
struct Launch {
  Device device = Device::cpu;
  std::uintptr_t stream = 0;
  explicit Launch(const Tensor& t) : device(t.device), stream(t.stream) {}

  // Releases the GIL, makes the stream the CUDA twins' launch stream for this thread, and runs
  // f(T{}) for the float type of dtype.
  template <typename F>
  void run(DType dtype, F&& f) const {
    py::gil_scoped_release nogil;
#ifdef FC_CUDA
    if (device == Device::cuda) cuda::set_stream(stream);
#endif
    dispatch(dtype, std::forward<F>(f));
  }
};

// A picker for op `name`: pick(device, T{}) is its twin for T (FC_TWIN, so the emulator's
// coverage trace sees it).
#define FC_PICK(name) \
  []([[maybe_unused]] ::fc::Device d, auto t) { return FC_TWIN(d, name, decltype(t)); }

// The message name of an op: the forward pass is named by the op alone ("relu"), any other
// pass in full ("relu_backward").
inline std::string op_name(const char* name) {
  const size_t n = std::strlen(name), k = std::strlen("_forward");
  return n > k && std::strcmp(name + n - k, "_forward") == 0 ? std::string(name, n - k)
                                                             : std::string(name);
}

// The type list of a twin's parameters after its first N (its scalars).
template <size_t N, typename Sig> struct TailOf;
template <size_t N, typename... A> struct TailOf<N, void (*)(A...)> {
  template <size_t... I>
  static std::tuple<std::tuple_element_t<N + I, std::tuple<A...>>...> make(
      std::index_sequence<I...>);
  using type = decltype(make(std::make_index_sequence<sizeof...(A) - N>{}));
};

// An op's tag, by its float CPU twin: scalar rules of one op are a check() overload on it,
// declared in namespace fc::bind (argument-dependent lookup finds it from the kind):
//   void check(OpTag<&softplus_forward_cpu<float>>, const char* op, double beta, double);
// The default accepts anything.
template <auto Twin> struct OpTag {};
template <auto Twin, typename... S>
void check(OpTag<Twin>, const char*, S...) {}
#define FC_TAG(name) ::fc::bind::OpTag<&name##_cpu<float>>{}

// The base of a kind whose Python signature is its own rather than derived from the twin (an
// optimizer's scalars packed into its Args struct, an allocator argument, a flag the twin does
// not take): Kind::call<Pick>(pick, args...) is bound with the signature of its args and
// returns what the Python call returns.
template <typename Kind, size_t N>
struct OwnSignature {
  static constexpr size_t kArrays = N;
  template <typename... Scalars, typename Pick, typename Tag>
  static void def(py::module_& m, const char* name, std::string, Pick pick, Tag) {
    def_call(m, name, pick, &Kind::template call<Pick>);
  }

 private:
  template <typename Pick, typename R, typename... A>
  static void def_call(py::module_& m, const char* name, Pick pick, R (*call)(Pick, A...)) {
    m.def(name, [pick, call](A... a) { return call(pick, a...); });
  }
};

namespace detail {
template <typename Kind, typename Pick, typename Tag, typename... S>
void bind_with(py::module_& m, const char* name, Pick pick, Tag tag, std::tuple<S...>*) {
  Kind::template def<S...>(m, name, op_name(name), pick, tag);
}
}  // namespace detail

// Registers `name` with the kind's Python signature: Kind::def<S...>(m, name, op, pick, tag)
// with S the twin's scalar types.
template <typename Kind, typename Pick, typename Tag>
void bind_op(py::module_& m, const char* name, Pick pick, Tag tag) {
  using Sig = decltype(pick(Device::cpu, float{}));
  using Tail = typename TailOf<Kind::kArrays, Sig>::type;
  detail::bind_with<Kind>(m, name, pick, tag, static_cast<Tail*>(nullptr));
}

// An op list's X for bind_op, with the module in scope as `m`: FC_<FAMILY>_OPS(FC_BIND_OP, T).
#define FC_BIND_OP(name, kind, ...) \
  ::fc::bind::bind_op<kind>(m, #name, FC_PICK(name), FC_TAG(name));

}  // namespace fc::bind
