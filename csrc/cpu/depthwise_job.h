// What every path of the CPU depthwise kernels shares: the job description
// (a forward-shaped convolution), the channel-block tiles, the forward
// micro-kernels, the work items and the loops over their rows.  Include only
// from the depthwise kernel sources (csrc/cpu/depthwise_*kernel.cpp, compiled
// once per ISA variant): everything here is internal to each of them (an
// anonymous namespace), and the micro-kernels must inline into the paths that
// use them (the always_inline lambdas are what keep the accumulators in
// registers).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/depthwise_kernel.h"
#include "cpu/depthwise_tile.h"
#include "cpu/simd.h"

namespace leanconv::cpu::LEANCONV_ISA {

namespace {


using simd::loadu;
using simd::static_for;
using simd::storeu;
using simd::store_stream;
using simd::vec_t;

// Lambdas of the unrolled loops must be inlined, or the accumulator arrays
// they touch live in memory instead of registers.
#define LC_INLINE __attribute__((always_inline))

// Register blocking.  Forward: P outputs x KB taps (P + KB + 1 vector
// registers); grad_weight: GP outputs x GKB taps.  P and GKB chains of
// dependent FMAs hide the FMA latency.
// (LEANCONV_TEST_BIG_BLOCKS: the AVX-512 block sizes at any width, so that a
// machine without AVX-512 can test them in a "generic" build.)
#ifdef LEANCONV_TEST_BIG_BLOCKS
constexpr bool kBigRegs = true;
#else
constexpr bool kBigRegs = simd::kVecRegs >= 32;
#endif
constexpr int kFwdP = kBigRegs ? 16 : 8;
constexpr int kFwdKB = kBigRegs ? 12 : 6;
constexpr int kFwdGenericP = kBigRegs ? 24 : 12;
constexpr int kGwP = kBigRegs ? 8 : 4;
constexpr int kGwKB = kBigRegs ? 20 : 10;
constexpr int kMaxP = kFwdGenericP > kFwdP ? kFwdGenericP : kFwdP;

// ---------------------------------------------------------------- geometry

// A forward-shaped convolution: out[o] = sum_k wt[k] * tile[o*s + k*d] along
// each axis, where source index i sits at tile position i*up + off.
struct Job {
  int64_t src[3], up[3], off[3];
  int64_t out[3], k[3], s[3], d[3];
  bool flip = false;
};

inline Job forward_job(const ConvGeometry& p) {
  Job j;
  for (int a = 0; a < 3; ++a) {
    j.src[a] = p.in[a];
    j.up[a] = 1;
    j.off[a] = p.pad[a];
    j.out[a] = p.out[a];
    j.k[a] = p.kernel[a];
    j.s[a] = p.stride[a];
    j.d[a] = p.dilation[a];
  }
  return j;
}

inline Job backward_input_job(const ConvGeometry& p) {
  Job j;
  for (int a = 0; a < 3; ++a) {
    j.src[a] = p.out[a];
    j.up[a] = p.stride[a];
    j.off[a] = (p.kernel[a] - 1) * p.dilation[a] - p.pad[a];
    j.out[a] = p.in[a];
    j.k[a] = p.kernel[a];
    j.s[a] = 1;
    j.d[a] = p.dilation[a];
  }
  j.flip = true;
  return j;
}

// The job of a forward-shaped op: forward or backward_input.
inline Job job_of(const ConvGeometry& p, DwOp op) {
  return op == DwOp::backward_input ? backward_input_job(p) : forward_job(p);
}

inline int band_axis(const ConvGeometry& p) { return p.spatial_dims == 3 ? 0 : 1; }

// Tile extents for a band of `rows` output rows along the band axis.
struct TileShape {
  int64_t n[3];  // D, H, W positions held (W padded for over-reads)
  int64_t size() const { return n[0] * n[1] * n[2]; }
};

inline TileShape tile_shape(const Job& j, int ab, int64_t rows) {
  TileShape t;
  for (int a = 0; a < 2; ++a) {
    const int64_t o = a == ab ? rows : j.out[a];
    t.n[a] = (o - 1) * j.s[a] + (j.k[a] - 1) * j.d[a] + 1;
  }
  // Blocks of outputs run past the last output (up to P-1 more): keep zeros there.
  const int64_t OW = j.out[2], s = j.s[2], d = j.d[2], k = j.k[2];
  t.n[2] = s == 1 ? OW + (std::max(kFwdP, kGwP) + k - 2) * d
                  : (OW + kFwdGenericP - 1) * s + (k - 1) * d + 1;
  return t;
}

// The source index at tile position q along axis a (q = i*up + off), or -1
// where the tile holds a zero: padding, or between the strided rows of
// grad_input.  The one rule for which tile rows are real (pack_tiles,
// source_rows).
inline int64_t source_index(const Job& j, int a, int64_t q) {
  const int64_t t = q - j.off[a];
  return t >= 0 && t % j.up[a] == 0 && t / j.up[a] < j.src[a] ? t / j.up[a] : -1;
}

// Packs the source rows of (image n, channel group at c0) into the G tiles
// (tile g at tiles + g*ts.size()*L) whose first position along the D and H
// axes is q0[0], q0[1].  The rows with no source row are left as they are:
// the kernels never read them (source_rows).
template <typename S, typename T>
void pack_tiles(const Job& j, const DwView& v, int64_t n, int64_t c0, Group grp, const int64_t q0[2],
                const TileShape& band, int64_t tile_elems, T* tiles, int64_t zero_to) {
  constexpr int L = kLanes<T>;
  const S* base = static_cast<const S*>(v.data) + n * v.stride[0] + c0 * v.stride[1];
  const int64_t rowlen = band.n[2] * L;
  // Positions past the last one any real output reads are zero (not source
  // data) up to zero_to: the blocks of outputs that run past the row's end read
  // them, and 0 * inf would be NaN (past zero_to nothing reads).
  const int64_t ext = (j.out[2] - 1) * j.s[2] + (j.k[2] - 1) * j.d[2] + 1;
  const int64_t zero_end = std::clamp(zero_to, ext, band.n[2]) * L;
  for (int64_t z = 0; z < band.n[0]; ++z) {
    const int64_t iz = source_index(j, 0, q0[0] + z);
    if (iz < 0) continue;
    for (int64_t y = 0; y < band.n[1]; ++y) {
      T* drow = tiles + (z * band.n[1] + y) * rowlen;
      const int64_t iy = source_index(j, 1, q0[1] + y);
      if (iy < 0) continue;
      pack_row<S>(base + iz * v.stride[2] + iy * v.stride[3], v.stride[1], v.stride[4], grp,
                  j.src[2], drow, tile_elems, ext, j.up[2], j.off[2]);
      for (int g = 0; g < grp.G; ++g) std::fill(drow + g * tile_elems + ext * L, drow + g * tile_elems + zero_end, T(0));
    }
  }
}

// Weights of channels c0 .. c0+L-1 as (kD, kH, kW, L), flipped in every axis if asked.
template <typename T>
void pack_weights(const Job& j, int64_t C, const T* w, int64_t c0, T* wt) {
  constexpr int L = kLanes<T>;
  const int64_t KV = j.k[0] * j.k[1] * j.k[2];
  for (int64_t t = 0; t < KV; ++t) {
    const int64_t src_tap = j.flip ? KV - 1 - t : t;  // flipping all axes reverses the taps
    for (int l = 0; l < L; ++l)
      wt[t * L + l] = c0 + l < C ? w[(c0 + l) * KV + src_tap] : T(0);
  }
}

// ---------------------------------------------------------------- forward micro-kernels

// How a micro-kernel reads source vectors and writes outputs: all L lanes, or
// only the first n (the last, partial channel block of the direct path: masked,
// so nothing of the next pixel or past the tensor's end is read or written).
template <typename T>
struct AllLanes {
  [[gnu::always_inline]] vec_t<T> load(const T* p) const { return loadu(p); }
  [[gnu::always_inline]] void store(T* p, vec_t<T> v) const { storeu(p, v); }
};
template <typename T>
struct FirstLanes {
  int n;
  [[gnu::always_inline]] vec_t<T> load(const T* p) const { return simd::load_partial(p, n); }
  [[gnu::always_inline]] void store(T* p, vec_t<T> v) const { simd::store_partial(p, v, n); }
};

// acc[j] += sum_k in[(j + k)*step] * w[k] for j < P, k < KB: each input vector
// is loaded once and feeds up to KB accumulators.
// (The weight vectors wv[0 .. KB-1] already in registers.)
template <typename T, int P, int KB, typename Lanes = AllLanes<T>>
[[gnu::always_inline]] inline void fwd_slide_w(const T* in, int64_t step, const vec_t<T>* wv,
                                               vec_t<T> (&acc)[P], const Lanes& lanes = {}) {
  static_for<P + KB - 1>([&](auto i) LC_INLINE {
    const vec_t<T> v = simd::in_register(lanes.load(in + i * step));
    static_for<KB>([&](auto k) LC_INLINE {
      constexpr int jj = decltype(i)::value - decltype(k)::value;
      if constexpr (jj >= 0 && jj < P) acc[jj] += v * wv[k];
    });
  });
}

template <typename T, int P, int KB, typename Lanes = AllLanes<T>>
[[gnu::always_inline]] inline void fwd_slide(const T* in, int64_t step, const T* w,
                                             vec_t<T> (&acc)[P], const Lanes& lanes = {}) {
  constexpr int L = kLanes<T>;
  vec_t<T> wv[KB];
  static_for<KB>([&](auto k) LC_INLINE { wv[k] = loadu(w + k * L); });
  fwd_slide_w<T, P, KB>(in, step, wv, acc, lanes);
}

// Calls fn(integral_constant<int, KW mod KB>).
template <typename F>
[[gnu::always_inline]] inline void with_fwd_rem(int64_t KW, F&& fn) {
  const int rem = static_cast<int>(KW % kFwdKB);
  static_for<kFwdKB>([&](auto r) LC_INLINE {
    if (rem == r) fn(r);
  });
}

// All KW taps of one kernel row for P outputs: blocks of KB taps, then the
// REM = KW mod KB left.
template <typename T, int P, int REM, typename Lanes = AllLanes<T>>
[[gnu::always_inline]] inline void fwd_row_taps(const T* in, const T* w, int64_t KW, int64_t step,
                                                vec_t<T> (&acc)[P], const Lanes& lanes = {}) {
  constexpr int L = kLanes<T>;
  constexpr int KB = kFwdKB;
  const int64_t full = KW - REM;
  for (int64_t k0 = 0; k0 < full; k0 += KB) fwd_slide<T, P, KB>(in + k0 * step, step, w + k0 * L, acc, lanes);
  if constexpr (REM > 0) fwd_slide<T, P, REM>(in + full * step, step, w + full * L, acc, lanes);
}

// Output j of a block (acc[j]) to out + j*out_step: non-temporal stores
// (STREAM) or through `lanes`.
template <typename T, int P, bool STREAM, typename Lanes>
[[gnu::always_inline]] inline void store_block(T* out, int64_t out_step, const vec_t<T> (&acc)[P],
                                               const Lanes& lanes) {
  static_for<P>([&](auto jj) LC_INLINE {
    if constexpr (STREAM) {
      store_stream(out + jj * out_step, acc[jj]);
    } else {
      lanes.store(out + jj * out_step, acc[jj]);
    }
  });
}

// One block of P outputs of one output row, stride 1 along W.  rows[t] (+
// in_off) is where kernel row t's first tap of the block's first output
// reads, wrows[t] (+ w_off) that row's KW weight vectors; consecutive taps and
// outputs are `step` elements apart in the input; output j goes to out +
// j*out_step.  REM >= 0 is KW mod KB, fixed for the whole block (tall kernels
// such as 51x5 have many short rows); REM < 0 picks it row by row.
template <typename T, int P, int REM, bool STREAM = false, typename Lanes = AllLanes<T>>
[[gnu::always_inline]] inline void fwd_block_slide(const T* const* rows, const T* const* wrows,
                                                   int64_t nrows, int64_t in_off, int64_t w_off,
                                                   int64_t KW, int64_t step, vec_t<T> bias, T* out,
                                                   int64_t out_step, const Lanes& lanes = {}) {
  vec_t<T> acc[P];
  static_for<P>([&](auto jj) LC_INLINE { acc[jj] = bias; });
  for (int64_t t = 0; t < nrows; ++t) {
    const T* in = rows[t] + in_off;
    const T* w = wrows[t] + w_off;
    if constexpr (REM >= 0) {
      fwd_row_taps<T, P, REM>(in, w, KW, step, acc, lanes);
    } else {
      constexpr int L = kLanes<T>;
      constexpr int KB = kFwdKB;
      const int64_t full = KW / KB * KB;
      const int rem = static_cast<int>(KW - full);
      for (int64_t k0 = 0; k0 < full; k0 += KB)
        fwd_slide<T, P, KB>(in + k0 * step, step, w + k0 * L, acc, lanes);
      static_for<KB>([&](auto r) LC_INLINE {
        if constexpr (decltype(r)::value > 0)
          if (rem == r) fwd_slide<T, P, decltype(r)::value>(in + full * step, step, w + full * L, acc, lanes);
      });
    }
  }
  store_block<T, P, STREAM>(out, out_step, acc, lanes);
}

// The block of fwd_block_slide for a kernel of NR rows of KW taps known at
// compile time, every row inside the input (w: the block's NR*KW weight
// vectors, row after row): the rows unrolled, and all the weights held in
// registers when they fit next to the accumulators (3x3 with 16 outputs: about
// 1.05x faster than the same block loading each row's weights, one thread).
template <typename T, int P, int NR, int KW, bool STREAM, typename Lanes>
[[gnu::always_inline]] inline void fwd_block_fixed(const T* const* rows, const T* w, int64_t in_off,
                                                   int64_t step, vec_t<T> bias, T* out, int64_t out_step,
                                                   const Lanes& lanes) {
  constexpr int L = kLanes<T>;
  constexpr bool hoist = NR * KW + P + 1 <= simd::kVecRegs;
  vec_t<T> acc[P];
  static_for<P>([&](auto jj) LC_INLINE { acc[jj] = bias; });
  vec_t<T> wv[hoist ? NR * KW : 1];
  if constexpr (hoist) static_for<NR * KW>([&](auto k) LC_INLINE { wv[k] = loadu(w + k * L); });
  static_for<NR>([&](auto t) LC_INLINE {
    constexpr int r = decltype(t)::value;
    if constexpr (hoist) {
      fwd_slide_w<T, P, KW>(rows[r] + in_off, step, wv + r * KW, acc, lanes);
    } else {
      fwd_slide<T, P, KW>(rows[r] + in_off, step, w + r * KW * L, acc, lanes);
    }
  });
  store_block<T, P, STREAM>(out, out_step, acc, lanes);
}

// Any stride: P outputs `ostep` input elements apart, taps `kstep` apart, one
// weight vector at a time.
template <typename T, int P>
[[gnu::always_inline]] inline void fwd_block_generic(const T* const* rows, const T* const* wrows,
                                                     int64_t nrows, int64_t in_off, int64_t KW,
                                                     int64_t ostep, int64_t kstep, vec_t<T> bias,
                                                     T* out, int64_t out_step) {
  constexpr int L = kLanes<T>;
  vec_t<T> acc[P];
  static_for<P>([&](auto jj) LC_INLINE { acc[jj] = bias; });
  for (int64_t t = 0; t < nrows; ++t) {
    const T* in = rows[t] + in_off;
    const T* w = wrows[t];
    for (int64_t kx = 0; kx < KW; ++kx) {
      const vec_t<T> wv = loadu(w + kx * L);
      const T* b = in + kx * kstep;
      static_for<P>([&](auto jj) LC_INLINE { acc[jj] += loadu(b + jj * ostep) * wv; });
    }
  }
  static_for<P>([&](auto jj) LC_INLINE { storeu(out + jj * out_step, acc[jj]); });
}

// Outputs a block of fwd_row computes when `left` outputs of its row (or
// residue class, with dilation) are left, stride 1: P, or P/2 for a last
// block of at most P/2 with 32 vector registers.
constexpr int64_t fwd_block_len(int64_t left) {
  return kFwdP / 2 >= 8 && left <= kFwdP / 2 ? kFwdP / 2 : kFwdP;
}

// One past the last tile position along W that fwd_row reads for a row of the
// forward-shaped job j (its blocks run past the row's last output).
inline int64_t fwd_read_extent(const Job& j) {
  const int64_t OW = j.out[2], KW = j.k[2], s = j.s[2], d = j.d[2];
  if (s != 1) return ((OW + kFwdGenericP - 1) / kFwdGenericP * kFwdGenericP - 1) * s + (KW - 1) * d + 1;
  int64_t last = 0;  // last output computed
  for (int64_t r = 0; r < std::min(d, OW); ++r) {
    const int64_t nr = (OW - r + d - 1) / d;
    int64_t b = 0;
    while (nr - b > fwd_block_len(nr - b)) b += kFwdP;
    last = std::max(last, r + (b + fwd_block_len(nr - b) - 1) * d);
  }
  return last + (KW - 1) * d + 1;
}

// One output row from tile rows into `out`, output x at out + x*out_px: a
// row buffer (out_px = L, room for >= (OW + kMaxP*d) * L values: the last
// block may run past OW) or, stride 1 only and `exact`, the destination itself
// (a channels-innermost tensor: its last partial block goes through a small
// buffer, nothing past OW is written).
template <typename T>
void fwd_row(const Job& j, const T* const* rows, const T* const* wrows, int64_t nrows,
             vec_t<T> bias, T* out, int64_t out_px = kLanes<T>, bool exact = false) {
  constexpr int L = kLanes<T>;
  const int64_t OW = j.out[2], KW = j.k[2], s = j.s[2], d = j.d[2];
  if (s == 1) {
    // Blocks of P outputs; with 32 vector registers (P = 16) a last block of at most P/2
    // outputs runs as a block of P/2 (8 chains of FMAs still hide their latency): rows of
    // 56 or 7 outputs no longer compute 8 or 9 outputs past their end.
    constexpr int P = kFwdP, PH = kFwdP / 2;
    for (int64_t r = 0; r < std::min(d, OW); ++r) {
      const int64_t nr = (OW - r + d - 1) / d;  // outputs r, r+d, ... < OW
      for (int64_t b = 0; b < nr; b += P) {
        const int64_t x0 = r + b * d;
        const bool tail = exact && nr - b < P;
        alignas(64) T part[P * L];
        T* o = tail ? part : out + x0 * out_px;
        const int64_t ostep = tail ? L : d * out_px;
        with_fwd_rem(KW, [&](auto rem) LC_INLINE {
          constexpr int REM = decltype(rem)::value;
          if constexpr (PH >= 8) {
            if (fwd_block_len(nr - b) == PH) {  // (fwd_read_extent follows these blocks)
              fwd_block_slide<T, PH, REM>(rows, wrows, nrows, x0 * L, 0, KW, d * L, bias, o, ostep);
              return;
            }
          }
          fwd_block_slide<T, P, REM>(rows, wrows, nrows, x0 * L, 0, KW, d * L, bias, o, ostep);
        });
        if (tail)
          for (int64_t i = 0; i < nr - b; ++i) storeu(out + (x0 + i * d) * out_px, loadu(part + i * L));
      }
    }
  } else {
    constexpr int P = kFwdGenericP;
    for (int64_t x0 = 0; x0 < OW; x0 += P)
      fwd_block_generic<T, P>(rows, wrows, nrows, x0 * s * L, KW, s * L, d * L, bias, out + x0 * L, L);
  }
}

// ---------------------------------------------------------------- items

struct Item {
  int64_t n, o0, o1;  // image, band [o0, o1) of output rows along the band axis
  int64_t c0;         // first channel of the group
  Group grp;
};

// Items run image by image, band by band, channel group by channel group.
inline Item item_of(const DwPlan& plan, int64_t C, int64_t rows, int64_t it) {
  Item r;
  const int64_t groups = plan.groups();
  r.c0 = it % groups * plan.group * plan.lanes;
  const int64_t rest = it / groups;
  const int64_t band = rest % plan.bands;
  r.n = rest / plan.bands;
  r.o0 = band * plan.band_len;
  r.o1 = std::min<int64_t>(rows, r.o0 + plan.band_len);
  const int64_t nch = std::min<int64_t>(plan.group * plan.lanes, C - r.c0);
  r.grp.nch = static_cast<int>(nch);
  r.grp.G = static_cast<int>((nch + plan.lanes - 1) / plan.lanes);
  return r;
}

// Memory of the calling thread kept from call to call, one buffer per Slot, not
// cleared (its users write every element they read): the tiles were
// zero-filled afresh on every call, 5-10 % of a 7x7 forward's profile at 7x7 to
// 28x28 outputs.  Up to kKeptBytes (1 MiB: the tiles of ConvNeXt's 7x7 layers
// take about half) stays with the thread; a larger buffer lives as long as the
// Scratch that asked for it.
template <typename T, int Slot>
class Scratch {
 public:
  T* get(size_t n) {
    if (n * sizeof(T) > kKeptBytes) {
      own_.reset(new T[n]);
      return own_.get();
    }
    Kept& k = kept();
    if (k.size < n) {
      k.ptr.reset(new T[n]);
      k.size = n;
    }
    return k.ptr.get();
  }

 private:
  static constexpr size_t kKeptBytes = size_t{1} << 20;
  struct Kept {
    std::unique_ptr<T[]> ptr;
    size_t size = 0;
  };
  static Kept& kept() {
    thread_local Kept k;
    return k;
  }
  std::unique_ptr<T[]> own_;
};

// Per-thread buffers and the band loop shared by the forward-shaped jobs and
// grad_weight: runs fn(item, band shape, row offsets) for every item in
// [begin, end) once its source band is packed into `tiles`; row offsets[t]
// of output row (oz, oy) is computed by row_offsets.
template <typename T>
struct Tiles {
  TileShape full;         // shape for a whole band
  int64_t elems = 0;      // elements per tile
  Scratch<T, 0> memory;
  T* data = nullptr;      // G tiles
  // Positions along W up to which a row is defined (source data, then zeros):
  // what the job's blocks of outputs read (the whole row unless set).
  int64_t zero_to = INT64_MAX;
  T* tile(int g) { return data + g * elems; }
};

template <typename S, typename T, typename Fn>
void for_each_band(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& src,
                   int64_t begin, int64_t end, Tiles<T>& tiles, Fn&& fn) {
  const int ab = band_axis(p);
  tiles.full = tile_shape(j, ab, plan.band_len);
  tiles.elems = tiles.full.size() * kLanes<T>;
  tiles.data = tiles.memory.get(tiles.elems * plan.group);
  for (int64_t it = begin; it < end; ++it) {
    const Item item = item_of(plan, p.channels, j.out[ab], it);
    TileShape band = tiles.full;
    band.n[ab] = (item.o1 - item.o0 - 1) * j.s[ab] + (j.k[ab] - 1) * j.d[ab] + 1;
    int64_t q0[2] = {0, 0};
    q0[ab] = item.o0 * j.s[ab];
    pack_tiles<S, T>(j, src, item.n, item.c0, item.grp, q0, band, tiles.elems, tiles.data, tiles.zero_to);
    fn(item, band);
  }
}

// Offsets (in elements) of the tile rows that output row (oz, oy) of `item`
// reads through kernel rows (kd, ky), in kernel-row order.
inline void row_offsets(const Job& j, int ab, const Item& item, const TileShape& band, int64_t oz,
                 int64_t oy, int64_t lanes, int64_t* offs) {
  const int64_t tz = oz * j.s[0] - (ab == 0 ? item.o0 * j.s[0] : 0);
  const int64_t ty = oy * j.s[1] - (ab == 1 ? item.o0 * j.s[1] : 0);
  const int64_t rowlen = band.n[2] * lanes;
  for (int64_t kd = 0; kd < j.k[0]; ++kd)
    for (int64_t ky = 0; ky < j.k[1]; ++ky)
      offs[kd * j.k[1] + ky] = ((tz + kd * j.d[0]) * band.n[1] + ty + ky * j.d[1]) * rowlen;
}

// The kernel rows (kd*kH + ky, in order) through which output row (oz, oy)
// reads source rows, not the zero rows of the padding or (grad_input with
// stride) between the strided rows: only those are computed.  Returns their
// number.
inline int64_t source_rows(const Job& j, int64_t oz, int64_t oy, int64_t* taps) {
  auto real = [&](int a, int64_t o, int64_t k) { return source_index(j, a, o * j.s[a] + k * j.d[a]) >= 0; };
  int64_t n = 0;
  for (int64_t kd = 0; kd < j.k[0]; ++kd) {
    if (!real(0, oz, kd)) continue;
    for (int64_t ky = 0; ky < j.k[1]; ++ky)
      if (real(1, oy, ky)) taps[n++] = kd * j.k[1] + ky;
  }
  return n;
}

// Output rows (oz, oy) of an item's band.
template <typename Fn>
void for_each_row(const Job& j, int ab, const Item& item, Fn&& fn) {
  const int64_t z0 = ab == 0 ? item.o0 : 0, z1 = ab == 0 ? item.o1 : j.out[0];
  const int64_t y0 = ab == 1 ? item.o0 : 0, y1 = ab == 1 ? item.o1 : j.out[1];
  for (int64_t oz = z0; oz < z1; ++oz)
    for (int64_t oy = y0; oy < y1; ++oy) fn(oz, oy);
}

}  // namespace

// The paths with a file of their own per dtype (float and double; the build
// compiles them in parallel): each runs the forward-shaped job of `op`
// (forward or backward_input) for items [begin, end) of `plan` and returns
// true, or returns false, having done nothing, where its conditions do not
// hold.  Channels-innermost source and destination, small kernels
// (depthwise_direct.h):
template <typename T>
bool depthwise_direct_job(const ConvGeometry& p, const DwPlan& plan, DwOp op, const DwView& src, const T* w,
                          const T* bias, const DwView& dst, int64_t begin, int64_t end);
// W innermost (NCHW), 3x3, 5x5 and 7x7 (depthwise_planar.h):
template <typename T>
bool depthwise_planar_job(const ConvGeometry& p, const DwPlan& plan, DwOp op, const DwView& src, const T* w,
                          const T* bias, const DwView& dst, int64_t begin, int64_t end);

}  // namespace leanconv::cpu::LEANCONV_ISA
