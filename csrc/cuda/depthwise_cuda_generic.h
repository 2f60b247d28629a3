// Index arithmetic of the generic CUDA depthwise kernels (any stride,
// dilation and padding; float64): one thread per output for the forward, one
// per input element for grad_input, one block per (channel, tap, chunk) for
// the weight gradient, and the fixed-order sum of the partial buffers that
// both weight-gradient kernels write.  Host/device code like
// depthwise_cuda_plan.h, replayed on the CPU by tests/cpp/depthwise_cuda_replay.cpp.
#pragma once

#include <cstdint>

#include "cuda/depthwise_cuda_plan.h"

namespace leanconv::cuda_dw {

// One output y[idx] (idx over N*C*OD*OH*OW, row-major) without bias.
LC_EXEC_CHECK_DISABLE
template <typename Acc, class LoadX, class LoadW>
LC_HDI Acc direct_forward_one(const ConvGeometry& g, int64_t idx, LoadX&& load_x, LoadW&& load_w,
                              int64_t& c) {
  const Index4 o = split_index(idx, g.out[0], g.out[1], g.out[2]);
  const int64_t ox = o.x, oy = o.y, od = o.z, nc = o.outer;
  c = nc % g.channels;
  Acc s = 0;
  for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
    const int64_t id = od * g.stride[0] + kd * g.dilation[0] - g.pad[0];
    if (id < 0 || id >= g.in[0]) continue;
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
      const int64_t iy = oy * g.stride[1] + ky * g.dilation[1] - g.pad[1];
      if (iy < 0 || iy >= g.in[1]) continue;
      const int64_t xrow = ((nc * g.in[0] + id) * g.in[1] + iy) * g.in[2];
      const int64_t wrow = ((c * g.kernel[0] + kd) * g.kernel[1] + ky) * g.kernel[2];
      for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        const int64_t ix = ox * g.stride[2] + kx * g.dilation[2] - g.pad[2];
        if (ix < 0 || ix >= g.in[2]) continue;
        s += load_w(wrow + kx) * load_x(xrow + ix);
      }
    }
  }
  return s;
}

// Output index o along one axis that reads input index i through kernel tap
// k (i = o*stride + k*dil - pad), or -1 when there is none.
LC_HDI int64_t gather_source(int64_t i, int64_t k, int64_t stride, int64_t dil, int64_t pad,
                             int64_t out) {
  const int64_t t = i + pad - k * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t o = t / stride;
  return o < out ? o : -1;
}

// One input gradient gx[idx] (idx over N*C*D*H*W) for any stride: the sum
// over taps of w * gy at the output that read this input through that tap.
LC_EXEC_CHECK_DISABLE
template <typename Acc, class LoadG, class LoadW>
LC_HDI Acc gather_input_one(const ConvGeometry& g, int64_t idx, LoadG&& load_g, LoadW&& load_w) {
  const Index4 i = split_index(idx, g.in[0], g.in[1], g.in[2]);
  const int64_t ix = i.x, iy = i.y, id = i.z, nc = i.outer;
  const int64_t c = nc % g.channels;
  Acc s = 0;
  for (int64_t kd = 0; kd < g.kernel[0]; ++kd) {
    const int64_t od = gather_source(id, kd, g.stride[0], g.dilation[0], g.pad[0], g.out[0]);
    if (od < 0) continue;
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
      const int64_t oy = gather_source(iy, ky, g.stride[1], g.dilation[1], g.pad[1], g.out[1]);
      if (oy < 0) continue;
      const int64_t grow = ((nc * g.out[0] + od) * g.out[1] + oy) * g.out[2];
      const int64_t wrow = ((c * g.kernel[0] + kd) * g.kernel[1] + ky) * g.kernel[2];
      for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        const int64_t ox = gather_source(ix, kx, g.stride[2], g.dilation[2], g.pad[2], g.out[2]);
        if (ox < 0) continue;
        s += load_w(wrow + kx) * load_g(grow + ox);
      }
    }
  }
  return s;
}

// Generic weight gradient: block b sums tap `tap` of channel c over the
// output positions of chunk s (positions = N*OD*OH*OW per channel).
struct WgGeneric {
  ConvGeometry g;
  int64_t taps, positions, chunk, S, nblocks;
};

inline WgGeneric plan_wgrad_generic(const ConvGeometry& g, int64_t target_blocks) {
  WgGeneric a;
  a.g = g;
  a.taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  a.positions = g.batch * g.out[0] * g.out[1] * g.out[2];
  // at least kGenericThreads positions per chunk
  const int64_t max_chunks = ceil_div(a.positions, kGenericThreads);
  split_chunks(max_chunks, g.channels * a.taps, target_blocks, a.chunk, a.S);
  a.chunk = ceil_div(a.positions, a.S);
  a.S = ceil_div(a.positions, a.chunk);
  a.nblocks = g.channels * a.taps * a.S;
  return a;
}

struct WgGenericBlock {
  int64_t c, s, tap, kd, ky, kx;
};

LC_HDI WgGenericBlock wg_generic_block(const WgGeneric& a, int64_t b) {
  WgGenericBlock k;
  k.tap = b % a.taps;
  const int64_t t = b / a.taps;
  k.s = t % a.S;
  k.c = t / a.S;
  k.kx = k.tap % a.g.kernel[2];
  k.ky = (k.tap / a.g.kernel[2]) % a.g.kernel[1];
  k.kd = k.tap / (a.g.kernel[2] * a.g.kernel[1]);
  return k;
}

LC_HDI int64_t wg_generic_partial_index(const WgGeneric& a, const WgGenericBlock& k) {
  return (k.c * a.S + k.s) * a.taps + k.tap;
}

// gy * x of one output position for the block's tap (0 where the tap reads
// padding).
LC_EXEC_CHECK_DISABLE
template <typename Acc, class LoadG, class LoadX>
LC_HDI Acc wg_generic_term(const WgGeneric& a, const WgGenericBlock& k, int64_t pos, LoadG&& load_g,
                           LoadX&& load_x) {
  const ConvGeometry& g = a.g;
  const Index4 o = split_index(pos, g.out[0], g.out[1], g.out[2]);
  const int64_t ox = o.x, oy = o.y, od = o.z, n = o.outer;
  const int64_t id = od * g.stride[0] + k.kd * g.dilation[0] - g.pad[0];
  const int64_t iy = oy * g.stride[1] + k.ky * g.dilation[1] - g.pad[1];
  const int64_t ix = ox * g.stride[2] + k.kx * g.dilation[2] - g.pad[2];
  if (id < 0 || id >= g.in[0] || iy < 0 || iy >= g.in[1] || ix < 0 || ix >= g.in[2]) return Acc(0);
  const int64_t nc = n * g.channels + k.c;
  return load_g(((nc * g.out[0] + od) * g.out[1] + oy) * g.out[2] + ox) *
         load_x(((nc * g.in[0] + id) * g.in[1] + iy) * g.in[2] + ix);
}

// Stage 2 of both weight gradients: gw[c, tap] = sum over s in order of
// partial[c, s, tap] (idx = c * taps + tap).
template <typename Acc>
LC_HDI Acc reduce_partials_one(const Acc* partial, int64_t idx, int64_t S, int64_t taps) {
  const int64_t c = idx / taps, tap = idx % taps;
  const Acc* p = partial + c * S * taps + tap;
  Acc s = 0;
  for (int64_t i = 0; i < S; ++i) s += p[i * taps];
  return s;
}

}  // namespace leanconv::cuda_dw
