// conv2d's forward along output rows on the CPU, float32 under AVX2 or AVX-512: the vector
// lanes are consecutive output pixels of one row, where the direct tiles' (conv_direct.h) are
// output channels. A first layer (one to three input channels, 16 or fewer output channels:
// fashion_cnn's conv1, LeNet's C1) gives the direct tiles too few taps to repay their scattered
// channel-major epilogue, or leaves most of a channel vector empty, and its im2col + GEMM spends
// as long copying windows as multiplying; here a tile keeps NV row vectors of KB channels in
// registers, each tap loads NV input vectors and broadcasts KB weights, and the results are
// stored as whole vectors of the output rows. Each output element is one chain of fused
// multiply-adds in (c, r, s) order from the bias, whatever the threads.
#pragma once

#include "geometry.h"

namespace fc {

// Whether conv2d's forward on g takes this path (float32, under the CPU variant in use): unit
// stride, output rows at least one vector wide, and few enough taps per output channel or few
// enough output channels that the direct tiles do worse. cpu/conv.cpp's algorithm choice asks.
bool conv2d_rows_applies(const Conv2dGeom& g);

// out = conv2d(inp, weight) + bias (bias may be null); only where conv2d_rows_applies.
// `parallel`: whether the call is worth waking the thread team.
void conv2d_rows_forward(float* out, const float* inp, const float* weight, const float* bias,
                         const Conv2dGeom& g, bool parallel);

}  // namespace fc
