// Winograd convolution F(2x2, 3x3) on the CPU, float32 under AVX-512: 3x3 windows at stride 1
// (ResNet's and VGG's layers), their input gradients (the same correlation with the kernel
// flipped) and their weight gradients; under AVX2 too (the weight gradient for 64-256 channels
// a side), with the same bits. Each 2x2 block
// of outputs costs 16 products per (input, output channel) pair instead of 36: the input's
// overlapping 4x4 tiles and the kernels are transformed (B^T d B, G g G^T), multiplied
// pointwise and summed over input channels (16 small GEMMs), and the sums transformed back
// (A^T m A); the weight gradient sums E_t . V_t over the
// blocks (E_t = A e_t A^T of dy's 2x2) and transforms back with G^T . G. The direct tiles
// already run at 96-99 % of the FMA ports' peak, so 2.25x fewer multiply-adds is the only way
// left to go faster on these layers.
//
// F(2x2, 3x3) is the variant whose transforms are exact in floating point but for halvings and
// one rounding per add: its error stays within a small factor of the direct sum's
// (tests/test_conv_winograd.py holds it to the same float64-reference tolerance as every other
// path), where F(4x4, 3x3)'s grows with its larger interpolation points. In the forward and
// input gradient each output is a fixed chain of adds whoever runs it, so results do not depend
// on the thread count; the weight gradient's per-thread sums, like the other paths', follow the
// count set.
#pragma once

#include "cpu/conv_direct.h"

namespace fc {

// Whether the Winograd path takes this pass of conv2d on g (float32, AVX-512 or AVX2 in use): a 3x3
// kernel at stride 1 and dilation 1, with enough channels for the transforms to be a small part
// of the work and output blocks that fill the vector lanes. Asked by conv2d's algorithm choice
// (cpu/conv.cpp).
bool conv2d_winograd_applies(ConvPass pass, const Conv2dGeom& g);

// Each returns false when the transforms met an infinity or NaN, or overflowed, and the caller
// then redoes the pass on the GEMM path (the transforms turn an infinity into NaN where the
// direct sum gives +-inf): the forward and input gradient when an output they wrote is not
// finite (the GEMM path overwrites every output), the weight gradient, having written nothing,
// when an array it reads holds one.

// out = conv2d(inp, weight) + bias (bias may be null).
bool conv2d_winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                             const Conv2dGeom& g, bool parallel);

// dinp = conv2d's input gradient for dout.
bool conv2d_winograd_backward_data(float* dinp, const float* dout, const float* weight,
                                   const Conv2dGeom& g, bool parallel);

// dweight += conv2d's weight gradient for dout.
bool conv2d_winograd_backward_weight(float* dweight, const float* dout, const float* inp,
                                     const Conv2dGeom& g, bool parallel);

}  // namespace fc
