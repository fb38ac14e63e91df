// Direct convolution on the CPU, float32 under AVX2 or AVX-512: no im2col and no GEMM call.
// im2col + one single-threaded GEMM per image reaches a third of an AVX-512 core on the course
// networks' layers (their GEMMs are a few hundred wide, where BLAS's packing and edge handling
// cost as much as the multiply), and copies each input pixel R*S times. Here one register tile
// keeps RR output pixels of one row times J vectors of output channels in registers and walks
// (input channel, kernel row, kernel column): each step loads J weight vectors and broadcasts
// RR input pixels, so every load feeds J or RR fused multiply-adds.
//
// One routine serves conv2d's forward (and conv_transpose2d's data gradient) and conv2d's data
// gradient (and conv_transpose2d's forward): the latter is the forward of dy with the kernel
// flipped and its channel roles swapped, at stride s one such correlation per phase of the
// input (the pixels s apart, each reached by every s-th kernel row and column). Each output
// element sums its taps in a fixed order (chains of about 128 multiply-adds, added one after
// the other: chunk_taps), so results do not depend on the thread count.
//
// `parallel`: whether the call is worth waking the thread team (cpu/conv.cpp's worth_threads).
#pragma once

#include "geometry.h"

namespace fc {

enum class ConvPass { forward, grad_input, grad_weight };

// Whether the direct path takes this pass of conv2d on g (float32, under the CPU variant in
// use): not on a CPU without AVX2, a 1x1 layer the GEMM takes whole, a layer too thin to fill a
// register tile, a strided and dilated input gradient, or where packing the weights outweighs
// the tiles.
// conv2d's algorithm choice (cpu/conv.cpp) asks it; the three functions below run only where it
// said yes.
bool conv2d_direct_applies(ConvPass pass, const Conv2dGeom& g);

// out = conv2d(inp, weight) + bias (bias may be null) by the direct path.
void conv2d_direct_forward(float* out, const float* inp, const float* weight, const float* bias,
                           const Conv2dGeom& g, bool parallel);

// dinp = conv2d's input gradient for dout.
void conv2d_direct_backward_data(float* dinp, const float* dout, const float* weight,
                                 const Conv2dGeom& g, bool parallel);

// dweight += conv2d's weight gradient for dout; dbias (unless null) += its bias gradient, as
// conv.cpp's channel_sums gives it, where the weight gradient's items hold whole planes of dy.
// Returns whether dbias was summed.
bool conv2d_direct_backward_weight(float* dweight, float* dbias, const float* dout,
                                   const float* inp, const Conv2dGeom& g, bool parallel);

}  // namespace fc
