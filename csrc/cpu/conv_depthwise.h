// Depthwise convolution on the CPU (groups == C == K: one input and one output channel per
// group, MobileNet's layers), stride 1. The GEMM path runs one GEMM of 1 x R*S by R*S x P*Q per
// plane, all edge handling, at 3 % of the machine's SGEMM rate; here each plane is a stencil
// along its rows: the plane is copied once into a zero-padded buffer, and each block of output
// pixels of a row sums the R*S shifted input rows times one weight each, in registers.
// Forward, input gradient (the same stencil on dy with the kernel flipped) and weight gradient
// (per channel, R*S dot products of dy with shifted input rows, summed over the images in
// order: the same bits for any thread count).
#pragma once

#include "geometry.h"

namespace fc {

// Whether g is a depthwise convolution these kernels take (stride 1, one channel per group).
bool depthwise_applies(const Conv2dGeom& g);

template <typename T>
void depthwise_forward(T* out, const T* inp, const T* weight, const T* bias,
                       const Conv2dGeom& g);

template <typename T>
void depthwise_backward_data(T* dinp, const T* dout, const T* weight, const Conv2dGeom& g);

// dweight += the weight gradient; dbias (unless null) += the bias gradient, as conv.cpp's
// channel_sums gives it.
template <typename T>
void depthwise_backward_weight(T* dweight, T* dbias, const T* dout, const T* inp,
                               const Conv2dGeom& g);

}  // namespace fc
