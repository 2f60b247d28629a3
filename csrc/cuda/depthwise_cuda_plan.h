// Tiling plans and per-thread index arithmetic of the CUDA depthwise kernels.
//
// Everything here is plain C++ that also compiles as __host__ __device__ code:
// the kernels in depthwise_cuda_kernels.cuh call these functions for every
// index they compute, and tests/cpp/depthwise_cuda_replay.cpp runs the very
// same functions on the CPU (block by block, thread by thread, phase by phase
// between the __syncthreads of the kernels) against a naive convolution.  So
// the tiling, the halo arithmetic, the register ring buffers and the bounds
// checks are tested without a GPU.  No CUDA header, no torch header.
//
// Kernels (see depthwise_cuda_kernels.cuh for the launch side):
//  * forward "fast" (stride 1 and dilation 1 along W; any stride/dilation along
//    H and D): a block computes a tile of bh x bw outputs of one (n, c, od)
//    slice.  The input tile plus halo and the kernel slice of one kd sit in
//    shared memory; a thread owns TW consecutive outputs of one row and slides
//    a TW-wide register window along the kernel row, so each step costs one
//    shared load of input, one (broadcast) load of weight and TW FMAs.
//  * weight gradient "fast" (stride 1 and dilation 1 along W): a warp owns a
//    block of U x T taps, its 32 lanes own 32 output rows of a tile; each lane
//    slides a T-wide register window along its row (one gy load and U input
//    loads per U*T FMAs); lanes are summed by a warp butterfly, tiles of a
//    chunk accumulate in registers, chunks go to a partial buffer that a second
//    kernel sums in a fixed order (deterministic, no atomics).
//  * generic kernels for every other case and for float64 (index code in
//    depthwise_cuda_generic.h).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ops/conv_geometry.h"

#if defined(__CUDACC__)
#define LC_HD __host__ __device__
#define LC_HDI __host__ __device__ __forceinline__
#define LC_UNROLL _Pragma("unroll")
#define LC_NO_UNROLL _Pragma("unroll 1")
// The functions below take loader/store functors; on the device those are
// __device__ lambdas, which nvcc would flag inside __host__ __device__ code.
#define LC_EXEC_CHECK_DISABLE _Pragma("nv_exec_check_disable")
#else
#define LC_HD
#define LC_HDI inline
#define LC_UNROLL
#define LC_NO_UNROLL
#define LC_EXEC_CHECK_DISABLE
#endif

namespace leanconv::cuda_dw {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 256;       // every kernel's blockDim.x <= this
constexpr int kGenericThreads = 256;   // blockDim.x of the generic kernels (power of 2)
constexpr size_t kSmemDefault = 48 * 1024;  // above this a kernel must opt in
// Weight gradient fast path: taps per warp (kWgU rows x kWgT columns), output
// rows per tile (one per lane), widest tile.
constexpr int kWgU = 4;
constexpr int kWgT = 8;
constexpr int kWgRows = kWarp;
constexpr int kWgMaxCols = 64;

LC_HDI int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
LC_HDI int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
LC_HDI int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
LC_HDI int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// The kernels read the one geometry of the call, ConvGeometry (D/H/W order;
// 2-D problems have depth 1).  Its pad may be negative (a crop) when a
// grad_input is computed as a forward convolution (grad_input_as_forward).

inline bool unit_stride(const ConvGeometry& g) {
  return g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
}

// With stride 1, grad_input = forward convolution of grad_output with the
// kernel flipped along every axis, padding (k-1)*dilation - pad before each
// axis (and (k-1)*dilation - pad_after after it), and output size = input
// size:  gx[i] = sum_k gy[i + pad - k*d] w[k] = sum_f gy[i - ((K-1)*d - pad) + f*d] w[K-1-f].
inline ConvGeometry grad_input_as_forward(const ConvGeometry& g) {
  ConvGeometry q = g;
  for (int a = 0; a < 3; ++a) {
    q.in[a] = g.out[a];
    q.out[a] = g.in[a];
    q.pad[a] = (g.kernel[a] - 1) * g.dilation[a] - g.pad[a];
    q.pad_after[a] = (g.kernel[a] - 1) * g.dilation[a] - g.pad_after[a];
  }
  return q;
}

// Largest number of threads of one warp that hit the same shared-memory bank
// when thread t of a warp reads word (t / groups) * row_step * pitch +
// (t % groups) * col_step (+ a constant).  1 = conflict free.
inline int bank_conflict_degree(int64_t pitch, int64_t row_step, int groups, int64_t col_step) {
  int count[kWarp] = {0};
  int worst = 0;
  for (int t = 0; t < kWarp; ++t) {
    const int64_t word = (t / groups) * row_step * pitch + (t % groups) * col_step;
    const int bank = static_cast<int>(word % kWarp);
    if (++count[bank] > worst) worst = count[bank];
  }
  return worst;
}

// Smallest row pitch >= cols with the fewest bank conflicts.
inline int64_t pick_pitch(int64_t cols, int64_t row_step, int groups, int64_t col_step) {
  int64_t best = cols;
  int best_degree = kWarp + 1;
  for (int64_t p = cols; p < cols + kWarp; ++p) {
    const int d = bank_conflict_degree(p, row_step, groups, col_step);
    if (d < best_degree) best_degree = d, best = p;
    if (d == 1) break;
  }
  return best;
}

// Coordinates of element idx of a row-major (outer, Z, Y, X) array.
struct Index4 {
  int64_t x, y, z, outer;
};

LC_HDI Index4 split_index(int64_t idx, int64_t Z, int64_t Y, int64_t X) {
  Index4 r;
  r.x = idx % X;
  idx /= X;
  r.y = idx % Y;
  idx /= Y;
  r.z = idx % Z;
  r.outer = idx / Z;
  return r;
}

LC_HDI int64_t grid_blocks(int64_t blocks) {
  // gridDim.x <= 2^31 - 1; the kernels loop over blocks beyond that.
  return min64(max64(blocks, 1), (int64_t(1) << 31) - 1);
}

// ============================================================== tiled kernels

// Both tiled kernels (fast forward, fast weight gradient) need stride 1 and
// dilation 1 along W and run their shared-memory index arithmetic in int:
// what they add to the geometry first are int copies of the kernel height and
// width and of the stride and dilation along H, narrowed by tiled_taps, which
// refuses sizes too large for that (then the generic kernels run).  Every
// other int extent the plans form is checked against kTiledMaxExtent.
constexpr int64_t kTiledMaxExtent = int64_t(1) << 20;
constexpr int64_t kTiledMaxTaps = 4096;  // kernel height or width

struct TiledTaps {
  ConvGeometry g;
  int KH, KW, sy, dy;  // g.kernel[1], g.kernel[2], g.stride[1], g.dilation[1]
};

inline bool tiled_taps(const ConvGeometry& g, TiledTaps& a) {
  if (g.stride[2] != 1 || g.dilation[2] != 1) return false;
  if (g.kernel[1] > kTiledMaxTaps || g.kernel[2] > kTiledMaxTaps || g.stride[1] > kTiledMaxExtent ||
      g.dilation[1] > kTiledMaxExtent)
    return false;
  a.g = g;
  a.KH = static_cast<int>(g.kernel[1]), a.KW = static_cast<int>(g.kernel[2]);
  a.sy = static_cast<int>(g.stride[1]), a.dy = static_cast<int>(g.dilation[1]);
  return true;
}

// ============================================================== forward, fast

struct FwdFast : TiledTaps {
  int tw;                 // outputs per thread along W: 8 or 16 (kernel template)
  int cgs;                // column groups per tile row (1, 2, 4, 8)
  int bh, bw;             // output tile: bh rows x bw = cgs*tw columns
  int rows, cols, pitch;  // input tile (plus halo) in shared memory
  int nthreads;           // bh * cgs, a multiple of 32
  int64_t tiles_y, tiles_x, nblocks;
  size_t smem_bytes;
};

LC_HDI int64_t fwd_smem_floats(const FwdFast& a) {
  return static_cast<int64_t>(a.rows) * a.pitch + static_cast<int64_t>(a.KH) * a.KW;
}

// Plans the fast forward kernel; false when it does not apply or its tiles do
// not fit in `smem_limit` bytes of shared memory (then use the direct kernel).
inline bool plan_forward_fast(const ConvGeometry& g, size_t smem_limit, size_t acc_size, FwdFast& a) {
  a = FwdFast{};
  if (!tiled_taps(g, a)) return false;
  a.tw = g.out[2] > 8 ? 16 : 8;
  const int64_t need = ceil_div(g.out[2], a.tw);
  a.cgs = 1;
  while (a.cgs < need && a.cgs < 8) a.cgs *= 2;
  a.bw = a.cgs * a.tw;
  const int rstep = kWarp / a.cgs;  // rows of one warp
  // Tile heights from the tallest useful one down, halving: the tallest that
  // fits in 48 KB, else the tallest that fits in smem_limit (opt-in).
  int64_t heights[8], nh = 0;
  for (int64_t h = min64(kMaxThreads / a.cgs, round_up(g.out[1], rstep));; h = round_up(h / 2, rstep)) {
    heights[nh++] = h;
    if (h <= rstep) break;
  }
  int64_t bh = 0, rows = 0, cols = 0, pitch = 0, bytes = 0;
  for (int pass = 0; pass < 2 && bh == 0; ++pass) {
    const int64_t limit = static_cast<int64_t>(pass == 0 ? std::min(kSmemDefault, smem_limit) : smem_limit);
    for (int64_t i = 0; i < nh; ++i) {
      const int64_t r = (heights[i] - 1) * g.stride[1] + (g.kernel[1] - 1) * g.dilation[1] + 1;
      const int64_t cl = a.bw + g.kernel[2] - 1;
      if (r > kTiledMaxExtent || cl > kTiledMaxExtent) return false;
      const int64_t pt = pick_pitch(cl, g.stride[1], a.cgs, a.tw);
      const int64_t by = (r * pt + g.kernel[1] * g.kernel[2]) * static_cast<int64_t>(acc_size);
      if (by <= limit) {
        bh = heights[i], rows = r, cols = cl, pitch = pt, bytes = by;
        break;
      }
    }
  }
  if (bh == 0) return false;
  a.bh = static_cast<int>(bh);
  a.rows = static_cast<int>(rows), a.cols = static_cast<int>(cols), a.pitch = static_cast<int>(pitch);
  a.nthreads = a.bh * a.cgs;
  a.tiles_y = ceil_div(g.out[1], a.bh);
  a.tiles_x = ceil_div(g.out[2], a.bw);
  a.nblocks = g.batch * g.channels * g.out[0] * a.tiles_y * a.tiles_x;
  a.smem_bytes = static_cast<size_t>(bytes);
  return true;
}

// Which slice and tile block b computes.
struct FwdBlock {
  int64_t nc, c, od;   // plane n*C + c, channel, output depth
  int64_t oy0, ox0;    // first output row / column of the tile
  int64_t iy0, ix0;    // input row / column held in shared row 0 / column 0
};

LC_HDI FwdBlock fwd_block(const FwdFast& a, int64_t b) {
  const Index4 t = split_index(b, a.g.out[0], a.tiles_y, a.tiles_x);
  FwdBlock k;
  k.od = t.z;
  k.nc = t.outer;
  k.c = k.nc % a.g.channels;
  k.oy0 = t.y * a.bh;
  k.ox0 = t.x * a.bw;
  k.iy0 = k.oy0 * a.g.stride[1] - a.g.pad[1];
  k.ix0 = k.ox0 - a.g.pad[2];
  return k;
}

// Input depth read by output depth od through kernel depth kd (may be outside
// [0, D): then that kd contributes nothing).
LC_HDI int64_t input_depth(const ConvGeometry& g, int64_t od, int64_t kd) {
  return od * g.stride[0] + kd * g.dilation[0] - g.pad[0];
}

// Phase 1 (all threads, then __syncthreads): input rows/cols of the tile for
// input depth `id` into xs (zero outside the input), kernel slice kd into ws.
// Warp w fills rows w, w + nwarps, ...; its lanes run along the row, so the
// global loads are coalesced.
LC_EXEC_CHECK_DISABLE
template <typename Acc, class LoadX, class LoadW>
LC_HDI void fwd_fill(const FwdFast& a, const FwdBlock& k, int64_t id, int64_t kd, int tid, Acc* xs,
                     Acc* ws, LoadX&& load_x, LoadW&& load_w) {
  const int warp = tid / kWarp, lane = tid % kWarp, nwarps = a.nthreads / kWarp;
  const int64_t plane_rows = (k.nc * a.g.in[0] + id) * a.g.in[1];
  for (int r = warp; r < a.rows; r += nwarps) {
    const int64_t iy = k.iy0 + r;
    const bool row_in = iy >= 0 && iy < a.g.in[1];
    const int64_t base = (plane_rows + iy) * a.g.in[2];
    Acc* dst = xs + r * a.pitch;
    for (int c = lane; c < a.cols; c += kWarp) {
      const int64_t ix = k.ix0 + c;
      dst[c] = (row_in && ix >= 0 && ix < a.g.in[2]) ? load_x(base + ix) : Acc(0);
    }
  }
  const int kk = a.KH * a.KW;
  const int64_t wbase = (k.c * a.g.kernel[0] + kd) * kk;
  for (int i = tid; i < kk; i += a.nthreads) ws[i] = load_w(wbase + i);
}

// One step of the sliding window: kernel column kx = kx0 + s with kx0 a
// multiple of TW.  Invariant before the step: ring[j % TW] = xr[j] for j in
// [kx, kx + TW - 1).  Output i needs xr[i + kx], held in ring[(i + s) % TW]
// once xr[kx + TW - 1] is loaded into slot (s + TW - 1) % TW.
template <int TW, typename Acc>
LC_HDI void fwd_step(const Acc* xr, const Acc* wr, int kx, int s, Acc (&ring)[TW], Acc (&acc)[TW]) {
  ring[(s + TW - 1) % TW] = xr[kx + TW - 1];
  const Acc w = wr[kx];
  LC_UNROLL
  for (int i = 0; i < TW; ++i) acc[i] += w * ring[(s + i) % TW];
}

// acc[i] += sum_kx wr[kx] * xr[i + kx] for i in [0, TW): one kernel row.
// KWF > 0: kernel width known at compile time (fully unrolled).
template <int TW, int KWF, typename Acc>
LC_HDI void fwd_row(const Acc* xr, const Acc* wr, int kw_runtime, Acc (&acc)[TW]) {
  Acc ring[TW];
  LC_UNROLL
  for (int j = 0; j < TW - 1; ++j) ring[j] = xr[j];
  if constexpr (KWF > 0) {
    LC_UNROLL
    for (int kx0 = 0; kx0 < KWF; kx0 += TW) {
      LC_UNROLL
      for (int s = 0; s < TW; ++s)
        if (kx0 + s < KWF) fwd_step<TW>(xr, wr, kx0 + s, s, ring, acc);
    }
  } else {
    const int kw = kw_runtime;
    int kx0 = 0;
    LC_NO_UNROLL
    for (; kx0 + TW <= kw; kx0 += TW) {
      LC_UNROLL
      for (int s = 0; s < TW; ++s) fwd_step<TW>(xr, wr, kx0 + s, s, ring, acc);
    }
    if (kx0 < kw) {
      LC_UNROLL
      for (int s = 0; s < TW; ++s)
        if (kx0 + s < kw) fwd_step<TW>(xr, wr, kx0 + s, s, ring, acc);
    }
  }
}

// Phase 2 (each thread on its own, reading shared memory only): thread tid
// owns output row r = tid / cgs and columns cg*TW .. cg*TW + TW - 1 of the tile
// (column group fastest, so a warp spans 32/cgs rows).  Output (r, i) reads
// shared row r*sy + ky*dy <= (bh-1)*sy + (KH-1)*dy = rows - 1 and column
// cg*TW + i + kx <= bw - 1 + KW - 1 = cols - 1.
template <int TW, int KWF, typename Acc>
LC_HDI void fwd_compute(const FwdFast& a, const Acc* xs, const Acc* ws, int tid, Acc (&acc)[TW]) {
  const int cg = tid % a.cgs, r = tid / a.cgs;
  for (int ky = 0; ky < a.KH; ++ky) {
    const Acc* xr = xs + (r * a.sy + ky * a.dy) * a.pitch + cg * TW;
    fwd_row<TW, KWF>(xr, ws + ky * a.KW, a.KW, acc);
  }
}

// Phase 3: write the thread's outputs that lie inside the output.
LC_EXEC_CHECK_DISABLE
template <int TW, typename Acc, class Store>
LC_HDI void fwd_store(const FwdFast& a, const FwdBlock& k, int tid, const Acc (&acc)[TW], Acc bias,
                      Store&& store) {
  const int cg = tid % a.cgs, r = tid / a.cgs;
  const int64_t oy = k.oy0 + r;
  if (oy >= a.g.out[1]) return;
  const int64_t row = ((k.nc * a.g.out[0] + k.od) * a.g.out[1] + oy) * a.g.out[2];
  LC_UNROLL
  for (int i = 0; i < TW; ++i) {
    const int64_t ox = k.ox0 + cg * TW + i;
    if (ox < a.g.out[2]) store(row + ox, acc[i] + bias);
  }
}

// ====================================================== weight gradient, fast

struct WgFast : TiledTaps {
  int twg;                // tile width (output columns); tile height kWgRows
  int nby, nbx;           // tap blocks per kernel slice: ceil(KH/U) x ceil(KW/T)
  int nwarps, groups;     // warps per block; blocks per kernel slice
  int rows, cols, px;     // input tile in shared memory
  int pg;                 // pitch of the grad_output tile (kWgRows x twg)
  int nthreads;           // 32 * nwarps
  int64_t tiles_y, tiles_x, tiles;  // tiles per channel = N * OD * tiles_y * tiles_x
  int64_t chunk, S;       // tiles per chunk, chunks per channel
  int64_t taps;           // KD * KH * KW: length of one partial row
  int64_t nblocks;        // C * S * KD * groups
  size_t smem_bytes;
};

LC_HDI int64_t wg_smem_floats(const WgFast& a) {
  return static_cast<int64_t>(a.rows) * a.px + static_cast<int64_t>(kWgRows) * a.pg;
}

// Chunks per channel so that about `target_blocks` blocks run, no chunk empty.
inline void split_chunks(int64_t items, int64_t blocks_per_chunk, int64_t target_blocks,
                         int64_t& chunk, int64_t& S) {
  S = ceil_div(target_blocks, max64(1, blocks_per_chunk));
  S = max64(1, min64(S, items));
  chunk = ceil_div(items, S);
  S = ceil_div(items, chunk);
}

inline bool plan_wgrad_fast(const ConvGeometry& g, size_t smem_limit, int64_t target_blocks, WgFast& a) {
  a = WgFast{};
  if (!tiled_taps(g, a)) return false;
  a.nby = static_cast<int>(ceil_div(g.kernel[1], kWgU));
  a.nbx = static_cast<int>(ceil_div(g.kernel[2], kWgT));
  const int64_t nb = int64_t(a.nby) * a.nbx;
  a.nwarps = static_cast<int>(min64(kMaxThreads / kWarp, nb));
  a.groups = static_cast<int>(ceil_div(nb, a.nwarps));
  a.nthreads = a.nwarps * kWarp;
  const int64_t rows = (kWgRows - 1) * g.stride[1] + (g.kernel[1] - 1) * g.dilation[1] + 1;
  if (rows > kTiledMaxExtent) return false;
  // Tile widths 64, 32, 16, 8 (at most OW): the widest that fits in 48 KB,
  // else the widest that fits in smem_limit (opt-in).
  int64_t twg = 0, cols = 0, px = 0, pg = 0, bytes = 0;
  for (int pass = 0; pass < 2 && twg == 0; ++pass) {
    const int64_t limit = static_cast<int64_t>(pass == 0 ? std::min(kSmemDefault, smem_limit) : smem_limit);
    for (int64_t w = min64(kWgMaxCols, g.out[2]);; w = max64(8, w / 2)) {
      // Lane l reads columns up to (w - 1) + kx0 + T - 1 with kx0 <= (nbx-1)*T.
      const int64_t cl = w + int64_t(a.nbx) * kWgT - 1;
      const int64_t p1 = pick_pitch(cl, g.stride[1], 1, 0), p2 = pick_pitch(w, 1, 1, 0);
      const int64_t by = (rows * p1 + kWgRows * p2) * static_cast<int64_t>(sizeof(float));
      if (by <= limit) {
        twg = w, cols = cl, px = p1, pg = p2, bytes = by;
        break;
      }
      if (w <= 8) break;
    }
  }
  if (twg == 0) return false;
  a.twg = static_cast<int>(twg);
  a.rows = static_cast<int>(rows), a.cols = static_cast<int>(cols);
  a.px = static_cast<int>(px), a.pg = static_cast<int>(pg);
  a.tiles_y = ceil_div(g.out[1], kWgRows);
  a.tiles_x = ceil_div(g.out[2], a.twg);
  a.tiles = g.batch * g.out[0] * a.tiles_y * a.tiles_x;
  split_chunks(a.tiles, g.channels * g.kernel[0] * a.groups, target_blocks, a.chunk, a.S);
  a.taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  a.nblocks = g.channels * a.S * g.kernel[0] * a.groups;
  a.smem_bytes = static_cast<size_t>(bytes);
  return true;
}

// Block b: channel c, chunk s, kernel depth kd, tap-block group.  Blocks that
// read the same tiles (same c, s) are neighbours.
struct WgBlock {
  int64_t c, s, kd;
  int group;
};

LC_HDI WgBlock wg_block(const WgFast& a, int64_t b) {
  WgBlock k;
  int64_t t = b;
  k.group = static_cast<int>(t % a.groups);
  t /= a.groups;
  k.kd = t % a.g.kernel[0];
  t /= a.g.kernel[0];
  k.s = t % a.S;
  k.c = t / a.S;
  return k;
}

// Tap block of warp `warp` in a block of group `group`: taps ky0 .. ky0+U-1,
// kx0 .. kx0+T-1 of kernel slice kd (those past KH / KW are computed on
// padding and never stored).  False for the idle warps of the last group.
LC_HDI bool wg_warp_taps(const WgFast& a, int group, int warp, int& ky0, int& kx0) {
  const int tb = group * a.nwarps + warp;
  if (tb >= a.nby * a.nbx) return false;
  ky0 = (tb / a.nbx) * kWgU;
  kx0 = (tb % a.nbx) * kWgT;
  return true;
}

struct WgTile {
  int64_t n, od, oy0, ox0;
};

LC_HDI WgTile wg_tile(const WgFast& a, int64_t q) {
  const Index4 t = split_index(q, a.g.out[0], a.tiles_y, a.tiles_x);
  return WgTile{t.outer, t.z, t.y * kWgRows, t.x * a.twg};
}

// Valid columns of a tile (the last tile of a row may be narrower).
LC_HDI int wg_tile_width(const WgFast& a, const WgTile& k) {
  return static_cast<int>(min64(a.twg, a.g.out[2] - k.ox0));
}

// Phase 1: grad_output tile (kWgRows x twg, zero outside) into gs, input tile
// (rows x cols at input depth id, zero outside) into xs.  Coalesced like
// fwd_fill.
LC_EXEC_CHECK_DISABLE
template <typename Acc, class LoadX, class LoadG>
LC_HDI void wg_fill(const WgFast& a, int64_t c, const WgTile& k, int64_t id, int tid, Acc* xs, Acc* gs,
                    LoadX&& load_x, LoadG&& load_g) {
  const int warp = tid / kWarp, lane = tid % kWarp, nwarps = a.nthreads / kWarp;
  const int64_t g_rows = ((k.n * a.g.channels + c) * a.g.out[0] + k.od) * a.g.out[1];
  for (int r = warp; r < kWgRows; r += nwarps) {
    const int64_t oy = k.oy0 + r;
    const bool row_in = oy < a.g.out[1];
    const int64_t base = (g_rows + oy) * a.g.out[2];
    Acc* dst = gs + r * a.pg;
    for (int cc = lane; cc < a.twg; cc += kWarp) {
      const int64_t ox = k.ox0 + cc;
      dst[cc] = (row_in && ox < a.g.out[2]) ? load_g(base + ox) : Acc(0);
    }
  }
  const int64_t x_rows = ((k.n * a.g.channels + c) * a.g.in[0] + id) * a.g.in[1];
  const int64_t iy0 = k.oy0 * a.g.stride[1] - a.g.pad[1], ix0 = k.ox0 - a.g.pad[2];
  for (int r = warp; r < a.rows; r += nwarps) {
    const int64_t iy = iy0 + r;
    const bool row_in = iy >= 0 && iy < a.g.in[1];
    const int64_t base = (x_rows + iy) * a.g.in[2];
    Acc* dst = xs + r * a.px;
    for (int cc = lane; cc < a.cols; cc += kWarp) {
      const int64_t ix = ix0 + cc;
      dst[cc] = (row_in && ix >= 0 && ix < a.g.in[2]) ? load_x(base + ix) : Acc(0);
    }
  }
}

// One step along the output row: column ox = ox0 + s, ox0 a multiple of T.
// Ring invariant (per tap row u): ring[u][j % T] = xs row u at column j for j in
// [ox, ox + T - 1); tap column t needs column ox + t, in ring[u][(s + t) % T]
// once column ox + T - 1 is loaded into slot (s + T - 1) % T.
template <typename Acc>
LC_HDI void wg_step(const WgFast& a, const Acc* xs, const int (&xoff)[kWgU], Acc gv, int ky0, int ox,
                    int s, Acc (&ring)[kWgU][kWgT], Acc (&acc)[kWgU][kWgT]) {
  LC_UNROLL
  for (int u = 0; u < kWgU; ++u) {
    if (ky0 + u < a.KH) {
      ring[u][(s + kWgT - 1) % kWgT] = xs[xoff[u] + ox + kWgT - 1];
      LC_UNROLL
      for (int t = 0; t < kWgT; ++t) acc[u][t] += gv * ring[u][(s + t) % kWgT];
    }
  }
}

// Phase 2 for one lane (output row oy0 + lane, which the caller checks is
// < OH): acc[u][t] += sum over the tile's valid columns ox of
// gy[lane][ox] * x[lane*sy + (ky0+u)*dy][ox + kx0 + t].  Shared reads: row
// lane*sy + ky*dy <= 31*sy + (KH-1)*dy = rows - 1 (only ky < KH is read);
// column ox + kx0 + t <= (tw-1) + (nbx-1)*T + T-1 <= cols - 1.
template <typename Acc>
LC_HDI void wg_compute(const WgFast& a, const Acc* xs, const Acc* gs, int lane, int ky0, int kx0, int tw,
                       Acc (&acc)[kWgU][kWgT]) {
  const Acc* gr = gs + lane * a.pg;
  int xoff[kWgU];
  Acc ring[kWgU][kWgT];
  LC_UNROLL
  for (int u = 0; u < kWgU; ++u) {
    xoff[u] = (lane * a.sy + (ky0 + u) * a.dy) * a.px + kx0;
    if (ky0 + u < a.KH) {
      LC_UNROLL
      for (int j = 0; j < kWgT - 1; ++j) ring[u][j] = xs[xoff[u] + j];
    }
  }
  int ox0 = 0;
  LC_NO_UNROLL
  for (; ox0 + kWgT <= tw; ox0 += kWgT) {
    LC_UNROLL
    for (int s = 0; s < kWgT; ++s) wg_step(a, xs, xoff, gr[ox0 + s], ky0, ox0 + s, s, ring, acc);
  }
  if (ox0 < tw) {
    LC_UNROLL
    for (int s = 0; s < kWgT; ++s)
      if (ox0 + s < tw) wg_step(a, xs, xoff, gr[ox0 + s], ky0, ox0 + s, s, ring, acc);
  }
}

// Where tap (ky, kx) of block k's kernel slice goes in the partial buffer
// (C, S, taps), row-major.
LC_HDI int64_t wg_partial_index(const WgFast& a, const WgBlock& k, int ky, int kx) {
  return (k.c * a.S + k.s) * a.taps + (k.kd * a.KH + ky) * a.KW + kx;
}

}  // namespace leanconv::cuda_dw
