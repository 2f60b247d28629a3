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

#include "ops/depthwise_params.h"

namespace leanconv::cuda_one_way {

constexpr int kTH = 8, kTW = 32, kThreads = kTH * kTW;  // a warp = one tile row
constexpr int kMaxTD = 8;                                  // output slices per block

// Geometry of a launch; plain values so that it can be passed by value.
struct Tile {
  int64_t N, C;
  int64_t D, H, W, oD, oH, oW;
  int kD, kH, kW;
  int sz, sy, sx, dz, dy, dx;
  int64_t pz, py, px;  // padding before
  int TD;              // output slices per block
  int RH, RW;          // input region rows / columns of a tile
  int64_t tiles_x, tiles_y, tiles_z, blocks;
};

inline Tile make_tile(const DepthwiseParams& p) {
  Tile t;
  t.N = p.batch;
  t.C = p.channels;
  t.D = p.in[0], t.H = p.in[1], t.W = p.in[2];
  t.oD = p.out[0], t.oH = p.out[1], t.oW = p.out[2];
  t.kD = static_cast<int>(p.kernel[0]), t.kH = static_cast<int>(p.kernel[1]),
  t.kW = static_cast<int>(p.kernel[2]);
  t.sz = static_cast<int>(p.stride[0]), t.sy = static_cast<int>(p.stride[1]),
  t.sx = static_cast<int>(p.stride[2]);
  t.dz = static_cast<int>(p.dilation[0]), t.dy = static_cast<int>(p.dilation[1]),
  t.dx = static_cast<int>(p.dilation[2]);
  t.pz = p.pad[0], t.py = p.pad[1], t.px = p.pad[2];
  t.TD = static_cast<int>(std::min<int64_t>(kMaxTD, p.out[0]));
  t.RH = (kTH - 1) * t.sy + (t.kH - 1) * t.dy + 1;
  t.RW = (kTW - 1) * t.sx + (t.kW - 1) * t.dx + 1;
  t.tiles_x = (t.oW + kTW - 1) / kTW;
  t.tiles_y = (t.oH + kTH - 1) / kTH;
  t.tiles_z = (t.oD + t.TD - 1) / t.TD;
  t.blocks = t.N * t.C * t.tiles_z * t.tiles_y * t.tiles_x;
  return t;
}

// Shared memory layout (elements of T): S0 | S1 | S2 | filters | reduction.
struct Smem {
  int s0, s1, s2, filt, red, total;
};

inline Smem smem_layout(const Tile& t, bool backward) {
  Smem m;
  int off = 0;
  m.s0 = off;
  off += t.RH * t.RW;
  m.s1 = off;
  off += t.RH * kTW;
  m.s2 = off;
  off += backward ? kThreads : 0;
  m.filt = off;
  off += t.kD + t.kH + t.kW;
  m.red = off;
  off += backward ? t.kD + t.kH + t.kW : 0;
  m.total = off;
  return m;
}

inline int grid_for(const Tile& t) {
  return static_cast<int>(std::min<int64_t>(t.blocks, INT_MAX));
}

// y = scale * (D o H o W filters)(x) (fd, scale may be null), T = float or
// double, every pointer contiguous on the current device; `smem_bytes` =
// m.total * sizeof(T), already checked against the device's limit.  Runs on
// `stream` and checks the launch.
template <typename T>
void launch_forward(const Tile& t, const Smem& m, size_t smem_bytes, const T* x, const T* fd,
                    const T* fh, const T* fw, const T* scale, T* y, cudaStream_t stream);

// All gradients: gx (planar like x, zeroed by the caller) and gf (C, kD + kH +
// kW + 1, zeroed by the caller) are accumulated with atomics; either may be
// null (not asked for).
template <typename T>
void launch_backward(const Tile& t, const Smem& m, size_t smem_bytes, const T* gy, const T* x,
                     const T* fd, const T* fh, const T* fw, const T* scale, T* gx, T* gf,
                     cudaStream_t stream);

}  // namespace leanconv::cuda_one_way
