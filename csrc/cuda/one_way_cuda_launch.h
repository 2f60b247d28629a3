// Tiling and launchers of the CUDA one-way filter chain kernels, shared by
// the glue (one_way_cuda.cpp) and the kernels (one_way_cuda.cu).  No torch
// header: the kernel file stays quick to compile.
//
// One thread block computes an output tile of kTH x kTW positions (one thread
// each) for up to TD output slices of one plane (n, c); see one_way_cuda.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "ops/conv_geometry.h"

namespace leanconv::cuda_one_way {

constexpr int kTH = 8, kTW = 32, kThreads = kTH * kTW;  // a warp = one tile row
constexpr int kMaxTD = 8;                                  // output slices per block

// What the kernels add to the geometry: int copies of the kernel sizes,
// strides and dilations (the shared-memory index arithmetic runs in int),
// output slices per block, the input region of a tile, and the block count.
// Plain values so that it can be passed by value.
struct OneWayCudaTiling {
  ConvGeometry g;
  int kD, kH, kW;
  int sz, sy, sx, dz, dy, dx;
  int TD;              // output slices per block
  int RH, RW;          // input region rows / columns of a tile
  int64_t tiles_x, tiles_y, tiles_z, blocks;
  // Region rows / columns before narrowing, and whether every int copy and
  // int product the kernels form ((kD - 1) * dz along D, the region along H
  // and W) holds its value.  When `fits_int` is false the other int fields
  // are not meaningful and nothing may be launched.
  int64_t region_rows, region_cols;
  bool fits_int;
};

// Shared memory layout (elements of T): S0 | S1 | S2 | filters | reduction.
// `total` is computed in int64; the int offsets hold their values when the
// tiling fits_int (plan_tiling checks it).
struct OneWayCudaSmem {
  int s0, s1, s2, filt, red;
  int64_t total;
};

inline OneWayCudaSmem smem_layout(const OneWayCudaTiling& t, bool backward) {
  OneWayCudaSmem m;
  const int64_t taps = t.g.kernel[0] + t.g.kernel[1] + t.g.kernel[2];
  int64_t off = 0;
  m.s0 = static_cast<int>(off);
  off += t.region_rows * t.region_cols;
  m.s1 = static_cast<int>(off);
  off += t.region_rows * kTW;
  m.s2 = static_cast<int>(off);
  off += backward ? kThreads : 0;
  m.filt = static_cast<int>(off);
  off += taps;
  m.red = static_cast<int>(off);
  off += backward ? taps : 0;
  m.total = off;
  return m;
}

inline OneWayCudaTiling plan_tiling(const ConvGeometry& p) {
  constexpr int64_t kIntMax = INT_MAX;
  OneWayCudaTiling t;
  t.g = p;
  t.fits_int = true;
  for (int a = 0; a < 3; ++a) {
    t.fits_int = t.fits_int && p.kernel[a] <= kIntMax && p.stride[a] <= kIntMax &&
                 p.dilation[a] <= kIntMax;
  }
  // with every factor <= INT_MAX these int64 expressions cannot overflow
  if (t.fits_int) {
    t.region_rows = (kTH - 1) * p.stride[1] + (p.kernel[1] - 1) * p.dilation[1] + 1;
    t.region_cols = (kTW - 1) * p.stride[2] + (p.kernel[2] - 1) * p.dilation[2] + 1;
    const int64_t extent_d = (p.kernel[0] - 1) * p.dilation[0] + 1;
    t.fits_int = t.region_rows <= kIntMax && t.region_cols <= kIntMax && extent_d <= kIntMax;
  } else {
    t.region_rows = t.region_cols = 0;
  }
  t.kD = static_cast<int>(p.kernel[0]), t.kH = static_cast<int>(p.kernel[1]),
  t.kW = static_cast<int>(p.kernel[2]);
  t.sz = static_cast<int>(p.stride[0]), t.sy = static_cast<int>(p.stride[1]),
  t.sx = static_cast<int>(p.stride[2]);
  t.dz = static_cast<int>(p.dilation[0]), t.dy = static_cast<int>(p.dilation[1]),
  t.dx = static_cast<int>(p.dilation[2]);
  t.TD = static_cast<int>(std::min<int64_t>(kMaxTD, p.out[0]));
  t.RH = static_cast<int>(t.region_rows);
  t.RW = static_cast<int>(t.region_cols);
  t.tiles_x = (p.out[2] + kTW - 1) / kTW;
  t.tiles_y = (p.out[1] + kTH - 1) / kTH;
  t.tiles_z = (p.out[0] + t.TD - 1) / t.TD;
  t.blocks = p.batch * p.channels * t.tiles_z * t.tiles_y * t.tiles_x;
  // the shared-memory offsets too (the backward kernel's, the larger layout;
  // not formed unless the region fits, so its product cannot overflow)
  t.fits_int = t.fits_int && smem_layout(t, true).total <= kIntMax;
  return t;
}

inline int grid_for(const OneWayCudaTiling& t) {
  return static_cast<int>(std::min<int64_t>(t.blocks, INT_MAX));
}

// y = scale * (D o H o W filters)(x) (fd, scale may be null), T = float or
// double, every pointer contiguous on the current device; `smem_bytes` =
// m.total * sizeof(T), already checked against the device's limit.  Runs on
// `stream` and checks the launch.
template <typename T>
void launch_forward(const OneWayCudaTiling& t, const OneWayCudaSmem& m, size_t smem_bytes,
                    const T* x, const T* fd, const T* fh, const T* fw, const T* scale, T* y,
                    cudaStream_t stream);

// All gradients: gx (planar like x, zeroed by the caller) and gf (C, kD + kH +
// kW + 1, zeroed by the caller) are accumulated with atomics; either may be
// null (not asked for).
template <typename T>
void launch_backward(const OneWayCudaTiling& t, const OneWayCudaSmem& m, size_t smem_bytes,
                     const T* gy, const T* x, const T* fd, const T* fh, const T* fw,
                     const T* scale, T* gx, T* gf, cudaStream_t stream);

}  // namespace leanconv::cuda_one_way
