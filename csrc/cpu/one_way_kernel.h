// CPU kernels of the one-way filter chain (bodies in one_way_kernel.cpp,
// compiled once per ISA variant).  Planar layout: input (N*C, D, H, W),
// output (N*C, oD, oH, oW), filters (C, k) per axis, all contiguous; 2-D
// problems have D = oD = kD = 1 and fd = nullptr.  Work items are planes
// (n, c) in [begin, end).
//
// The chain of a plane is computed slice by slice (a slice = one D index):
// the W filter fills a block of rows that stays in cache, the H filter
// combines those rows, and the D filter adds the finished slice into the
// output slices it feeds; nothing in between goes to memory.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/isa.h"
#include "ops/conv_geometry.h"

namespace leanconv::cpu {

// Sizes of the per-thread scratch buffers of the one-way kernels.  `static`
// so that every translation unit (each ISA variant, the glue) has its own
// copy of this plain arithmetic.
struct OneWayScratch {
  int64_t ext_w = 0;      // padded input columns a row of windows reads
  int64_t block_rows = 0; // output rows per block of the H filter
  int64_t t1_rows = 0;    // W-filtered rows a block needs
  int64_t elems = 0;      // total scratch elements per thread
  bool flat = false;      // stride 1 along H and W: whole blocks as flat arrays
  // offsets (elements) of the buffers inside a thread's scratch
  int64_t coef = 0, xrow = 0, t1 = 0, grow = 0, gxrow = 0, slice = 0, gslice = 0;
  int64_t xp = 0, gp = 0, gyf = 0, gxp = 0;  // flat path: blocks of rows of ext_w columns
};

static inline OneWayScratch one_way_scratch(const ::leanconv::ConvGeometry& p, bool backward) {
  OneWayScratch s;
  const int64_t ow = p.out[2], oh = p.out[1];
  s.ext_w = (ow - 1) * p.stride[2] + (p.kernel[2] - 1) * p.dilation[2] + 1;
  // Blocks of W-filtered rows of about 32 KiB (float), at least one output row.
  const int64_t halo = (p.kernel[1] - 1) * p.dilation[1] + 1;
  const int64_t budget_rows = std::max<int64_t>(8192 / std::max<int64_t>(ow, 1), halo + p.stride[1]);
  s.block_rows = std::clamp<int64_t>((budget_rows - halo) / p.stride[1] + 1, 1, std::max<int64_t>(oh, 1));
  s.t1_rows = (s.block_rows - 1) * p.stride[1] + halo;
  const int64_t pad16 = 16;  // keeps buffers apart by a cache line or more
  int64_t off = 0;
  auto take = [&](int64_t n) { const int64_t o = off; off += n + pad16; return o; };
  // H taps (kH), kH or kD accumulators, reversed W or H taps
  s.coef = take(p.kernel[1] + std::max(p.kernel[1], p.kernel[0]) + p.kernel[0] +
                std::max(p.kernel[1], p.kernel[2]));
  s.flat = p.stride[1] == 1 && p.stride[2] == 1;
  const int64_t rows_w = s.t1_rows * s.ext_w;  // a block of padded rows, ext_w >= ow columns
  const int64_t gap = (p.kernel[2] - 1) * p.dilation[2];
  s.xrow = take(s.ext_w);
  s.t1 = take(rows_w);
  if (s.flat) s.xp = take(rows_w);
  const bool three_d = p.kernel[0] > 1;  // kD == 1 needs no slice buffers
  if (three_d) s.slice = take(oh * ow);
  if (backward) {
    s.grow = take(ow + 2 * gap);
    s.gxrow = take(s.ext_w);
    if (s.flat) {
      s.gp = take((s.block_rows + 2 * (halo - 1)) * s.ext_w);
      s.gyf = take(gap + rows_w);
      s.gxp = take(rows_w);
    }
    if (three_d) s.gslice = take(oh * ow);
  }
  s.elems = off;
  return s;
}

}  // namespace leanconv::cpu

#define LEANCONV_ONE_WAY_CPU_KERNELS(T)                                                         \
  /* y = scale * (D o H o W filters)(x); scale/fd may be null; scratch: one_way_scratch(p, */  \
  /* false).elems elements. */                                                                  \
  void one_way_forward_planar(const ::leanconv::ConvGeometry& p, const T* x, const T* fd,    \
                              const T* fh, const T* fw, const T* scale, T* y, T* scratch,       \
                              int64_t begin, int64_t end);                                      \
  /* Gradients of the planes in [begin, end).  gx (planar like x) is written when non-null.  */ \
  /* When gf is non-null, the filter and scale gradients are ADDED to gf, laid out as       */  \
  /* (C, kD + kH + kW + 1): per channel the D, H, W filter gradients and the scale one.     */  \
  void one_way_backward_planar(const ::leanconv::ConvGeometry& p, const T* gy, const T* x,   \
                               const T* fd, const T* fh, const T* fw, const T* scale, T* gx,    \
                               T* gf, T* scratch, int64_t begin, int64_t end);

LEANCONV_DECLARE_FOR_ISAS(LEANCONV_ONE_WAY_CPU_KERNELS(float) LEANCONV_ONE_WAY_CPU_KERNELS(double))
