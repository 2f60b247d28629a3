// CPU depthwise convolution kernels.  Compiled once per ISA variant into
// namespace leanconv::cpu::<LEANCONV_ISA> (see CMakeLists.txt).
//
// Every op is a "job": a forward-shaped convolution of a source tensor into a
// destination tensor, one channel block (a vector of L channels) at a time.
//   forward         source x,  kernel w,          tile position q = i + pad
//   grad_input      source gy, kernel w flipped,  q = o*stride + (k-1)*dil - pad,
//                   then a stride-1 convolution (zeros between the strided rows)
//   grad_weight     correlates the x tile with the gy rows.
// The source of one (image, band, group of blocks) is packed into zero-padded
// tiles (D, H, W, L), one per block; the micro-kernels then keep a block of
// outputs (or of weight gradients) and a block of kernel taps in vector
// registers and slide along W, so each loaded input vector feeds several FMAs.
// Small kernels on channels_last tensors run straight from the input
// (run_direct_job): there the traffic to memory, not the arithmetic, decides;
// so do 3x3, 5x5 and 7x7 on NCHW tensors, plane by plane with vectors along W
// (run_planar_job, depthwise_planar.h), where the tiles would transpose.
// grad_input with stride > 1 also multiplies the zeros between the strided
// rows (the product of the strides times the arithmetic): simple, vectorized.
//
// Why one file over 600 lines: the forward, grad_input and grad_weight paths
// share the Job description, the tile packing, the item loops and the
// register-blocking constants, and their micro-kernels must inline into one
// another (the always_inline lambdas are what keep the accumulators in
// registers); split across files, all of that would move into a header that
// only these pieces include.  The dtype conversions and row transposes that
// can stand alone are in depthwise_tile.h.
#include "cpu/depthwise_kernel.h"

#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/depthwise_planar.h"
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

Job forward_job(const ConvGeometry& p) {
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

Job backward_input_job(const ConvGeometry& p) {
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

int band_axis(const ConvGeometry& p) { return p.spatial_dims == 3 ? 0 : 1; }

// Tile extents for a band of `rows` output rows along the band axis.
struct TileShape {
  int64_t n[3];  // D, H, W positions held (W padded for over-reads)
  int64_t size() const { return n[0] * n[1] * n[2]; }
};

TileShape tile_shape(const Job& j, int ab, int64_t rows) {
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
                const TileShape& band, int64_t tile_elems, T* tiles) {
  constexpr int L = kLanes<T>;
  const S* base = static_cast<const S*>(v.data) + n * v.stride[0] + c0 * v.stride[1];
  const int64_t rowlen = band.n[2] * L;
  // Positions past the last one any real output reads stay zero (not source
  // data): the padded blocks of outputs read them, and 0 * inf would be NaN.
  const int64_t ext = (j.out[2] - 1) * j.s[2] + (j.k[2] - 1) * j.d[2] + 1;
  for (int64_t z = 0; z < band.n[0]; ++z) {
    const int64_t iz = source_index(j, 0, q0[0] + z);
    if (iz < 0) continue;
    for (int64_t y = 0; y < band.n[1]; ++y) {
      T* drow = tiles + (z * band.n[1] + y) * rowlen;
      const int64_t iy = source_index(j, 1, q0[1] + y);
      if (iy < 0) continue;
      pack_row<S>(base + iz * v.stride[2] + iy * v.stride[3], v.stride[1], v.stride[4], grp,
                  j.src[2], drow, tile_elems, ext, j.up[2], j.off[2]);
      for (int g = 0; g < grp.G; ++g) std::fill(drow + g * tile_elems + ext * L, drow + g * tile_elems + rowlen, T(0));
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
            if (nr - b <= PH) {
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

// One output row of G channel blocks straight from a channels-innermost
// source into a channels-innermost destination (stride and dilation 1 along
// W, no copies): rows[t] point at input x = 0 of the kernel rows inside the
// input, block g's channels start g*L further, its weights at wrows[t] +
// g*wg; ps/out_ps are the pixel strides.  The last block holds last_lanes
// channels (< L when C is not a multiple of L: masked loads and stores).
template <typename T>
struct DirectRow {
  const T* const* rows;
  const T* const* wrows;
  int64_t nrows, kernel_rows;  // rows inside the input; the kernel's rows (kD*kH)
  int64_t W, off, KW, OW, ps;
  int G, last_lanes;
  int64_t wg;
  const vec_t<T>* bias;
  T* out;
  int64_t out_ps;

  // fn(g, lanes) for every channel block: all lanes, then the partial last block masked
  template <typename Fn>
  [[gnu::always_inline]] void each_block(Fn&& fn) const {
    constexpr int L = kLanes<T>;
    const int full = last_lanes == L ? G : G - 1;
    for (int g = 0; g < full; ++g) fn(g, AllLanes<T>{});
    if (full < G) fn(full, FirstLanes<T>{last_lanes});
  }
};

// A kernel shape known at compile time: `rows` kernel rows of `taps` taps
// (-1: known at run time only).
template <int R, int K>
struct FixedShape {
  static constexpr int rows = R, taps = K;
};

// The outputs x0 <= x < x1 of a row whose windows lie inside the input, in
// sliding blocks of P outputs, then P/2, P/4, ..., 1 for the rest (measured
// 1.15-1.8x faster than one last block overlapping the one before it).  All
// blocks of a group run on the same pixels in turn, so the input window is
// reused from the L1 cache and the output written pixel by pixel.  Shape:
// the kernel's rows and taps where known at compile time (rows: only when all
// of them lie inside the input).  STREAM: non-temporal stores for whole
// vectors (needs out, out_ps and the block offsets aligned to the vector
// size).  Not inlined: each shape's loop gets its own registers.
template <typename T, bool STREAM, typename Shape>
[[gnu::noinline]] void fwd_direct_slide(const DirectRow<T>& r, int64_t x0, int64_t x1) {
  constexpr int L = kLanes<T>;
  constexpr int P = kFwdP;
  constexpr int NR = Shape::rows, KWC = Shape::taps;
  auto block = [&](auto pb, int64_t x) LC_INLINE {
    constexpr int PB = decltype(pb)::value;
    r.each_block([&](int g, const auto& lanes) LC_INLINE {
      constexpr bool stream = STREAM && std::is_same_v<std::decay_t<decltype(lanes)>, AllLanes<T>>;
      const int64_t in_off = (x - r.off) * r.ps + g * L;
      T* out = r.out + x * r.out_ps + g * L;
      if constexpr (NR > 0) {
        // every kernel row inside the input: wrows[t] = wrows[0] + t*KW*L
        fwd_block_fixed<T, PB, NR, KWC, stream>(r.rows, r.wrows[0] + g * r.wg, in_off, r.ps, r.bias[g], out,
                                                r.out_ps, lanes);
      } else {
        fwd_block_slide<T, PB, KWC, stream>(r.rows, r.wrows, r.nrows, in_off, g * r.wg, r.KW, r.ps, r.bias[g],
                                            out, r.out_ps, lanes);
      }
    });
  };
  // The outputs near the ends test each tap; kernel rows (and, with KW known
  // at compile time, taps) add into four accumulators in turn, independent
  // chains of FMAs summed at the end (one chain per row cost 10-27 % of the
  // forward at 3x3-7x7).
  auto edge = [&](int64_t x) {
    const int64_t off = r.off, KW = r.KW;
    const int64_t k0 = std::max<int64_t>(0, off - x), k1 = std::min<int64_t>(KW, r.W + off - x);
    r.each_block([&](int g, const auto& lanes) LC_INLINE {
      vec_t<T> acc[4] = {r.bias[g], vec_t<T>{}, vec_t<T>{}, vec_t<T>{}};
      for (int64_t t = 0; t < r.nrows; ++t) {
        const T* in = r.rows[t] + (x - off) * r.ps + g * L;
        const T* w = r.wrows[t] + g * r.wg;
        if constexpr (KWC > 0) {
          static_for<KWC>([&](auto kx) LC_INLINE {
            if (kx >= k0 && kx < k1) acc[kx & 3] += lanes.load(in + kx * r.ps) * loadu(w + kx * L);
          });
        } else {
          for (int64_t kx = k0; kx < k1; ++kx) acc[t & 3] += lanes.load(in + kx * r.ps) * loadu(w + kx * L);
        }
      }
      lanes.store(r.out + x * r.out_ps + g * L, (acc[0] + acc[1]) + (acc[2] + acc[3]));
    });
  };
  for (int64_t x = 0; x < x0; ++x) edge(x);
  for (int64_t x = x1; x < r.OW; ++x) edge(x);
  int64_t x = x0;
  for (; x + P <= x1; x += P) block(std::integral_constant<int, P>{}, x);
  static_for<5>([&](auto i) LC_INLINE {
    constexpr int PB = 16 >> decltype(i)::value;
    if constexpr (PB < P) {
      if (x1 - x >= PB) {
        block(std::integral_constant<int, PB>{}, x);
        x += PB;
      }
    }
  });
}

template <typename T, bool STREAM>
void fwd_row_direct(const DirectRow<T>& r) {
  constexpr int L = kLanes<T>;
  const int64_t off = r.off, KW = r.KW;
  const int64_t xa = std::clamp<int64_t>(off, 0, r.OW);                   // first inside output
  const int64_t xb = std::clamp<int64_t>(r.W - KW + 1 + off, xa, r.OW);   // one past the last
  // The common kernels with their rows and taps unrolled when every row lies
  // inside the input; the common widths with their taps unrolled; the rest
  // pick their taps row by row.
  const bool all_rows = r.nrows == r.kernel_rows;
  const int64_t R = r.kernel_rows;
  if (all_rows && R == 3 && KW == 3) fwd_direct_slide<T, STREAM, FixedShape<3, 3>>(r, xa, xb);
  else if (all_rows && R == 9 && KW == 3) fwd_direct_slide<T, STREAM, FixedShape<9, 3>>(r, xa, xb);  // 3x3x3
  else if (all_rows && R == 5 && KW == 5) fwd_direct_slide<T, STREAM, FixedShape<5, 5>>(r, xa, xb);
  else if (all_rows && R == 7 && KW == 7) fwd_direct_slide<T, STREAM, FixedShape<7, 7>>(r, xa, xb);
  else if (KW == 3) fwd_direct_slide<T, STREAM, FixedShape<-1, 3>>(r, xa, xb);
  else if (KW == 5) fwd_direct_slide<T, STREAM, FixedShape<-1, 5>>(r, xa, xb);
  else if (KW == 7) fwd_direct_slide<T, STREAM, FixedShape<-1, 7>>(r, xa, xb);
  else fwd_direct_slide<T, STREAM, FixedShape<-1, -1>>(r, xa, xb);
}

// ---------------------------------------------------------------- grad_weight micro-kernels

// acc[k] += sum_j g[j*gstep] * in[(j + k)*step] for j < P, k < KB.
template <typename T, int P, int KB>
[[gnu::always_inline]] inline void gw_slide(const T* g, const T* in, int64_t step,
                                            vec_t<T> (&acc)[KB]) {
  vec_t<T> gv[P];
  static_for<P>([&](auto jj) LC_INLINE { gv[jj] = loadu(g + jj * step); });
  static_for<P + KB - 1>([&](auto i) LC_INLINE {
    const vec_t<T> v = loadu(in + i * step);
    static_for<KB>([&](auto k) LC_INLINE {
      constexpr int jj = decltype(i)::value - decltype(k)::value;
      if constexpr (jj >= 0 && jj < P) acc[k] += v * gv[jj];
    });
  });
}

// Taps k0 .. k0+KB-1 of one kernel row, over one output row (stride 1 along W).
template <typename T, int KB>
[[gnu::always_inline]] inline void gw_taps_slide(const T* grow, const T* xrow, int64_t OW, int64_t d,
                                                 int64_t k0, T* gw) {
  constexpr int L = kLanes<T>;
  constexpr int P = kGwP;
  vec_t<T> acc[KB];
  static_for<KB>([&](auto k) LC_INLINE { acc[k] = loadu(gw + k * L); });
  const int64_t step = d * L;
  for (int64_t r = 0; r < std::min(d, OW); ++r) {
    const int64_t nr = (OW - r + d - 1) / d;
    for (int64_t b = 0; b < nr; b += P) {
      const int64_t x0 = r + b * d;
      gw_slide<T, P, KB>(grow + x0 * L, xrow + (x0 + k0 * d) * L, step, acc);
    }
  }
  static_for<KB>([&](auto k) LC_INLINE { storeu(gw + k * L, acc[k]); });
}

// Any stride: acc[k] += sum_x g[x] * in[x*s + (k0+k)*d].
template <typename T, int KB>
[[gnu::always_inline]] inline void gw_taps_generic(const T* grow, const T* xrow, int64_t OW,
                                                   int64_t s, int64_t d, int64_t k0, T* gw) {
  constexpr int L = kLanes<T>;
  vec_t<T> acc[KB];
  static_for<KB>([&](auto k) LC_INLINE { acc[k] = loadu(gw + k * L); });
  const T* in = xrow + k0 * d * L;
  for (int64_t x = 0; x < OW; ++x) {
    const vec_t<T> g = loadu(grow + x * L);
    static_for<KB>([&](auto k) LC_INLINE { acc[k] += loadu(in + (x * s + k * d) * L) * g; });
  }
  static_for<KB>([&](auto k) LC_INLINE { storeu(gw + k * L, acc[k]); });
}

// gw[kx] (kx < KW, one kernel row) += correlation of one gy row with one x row.
template <typename T>
void gw_row(const Job& j, const T* grow, const T* xrow, T* gw) {
  constexpr int L = kLanes<T>;
  constexpr int KB = kGwKB;
  const int64_t OW = j.out[2], KW = j.k[2], s = j.s[2], d = j.d[2];
  const int64_t full = KW / KB * KB;
  const int rem = static_cast<int>(KW - full);
  if (s == 1) {
    for (int64_t k0 = 0; k0 < full; k0 += KB) gw_taps_slide<T, KB>(grow, xrow, OW, d, k0, gw + k0 * L);
    static_for<KB>([&](auto r) LC_INLINE {
      if constexpr (decltype(r)::value > 0)
        if (rem == r) gw_taps_slide<T, decltype(r)::value>(grow, xrow, OW, d, full, gw + full * L);
    });
  } else {
    for (int64_t k0 = 0; k0 < full; k0 += KB) gw_taps_generic<T, KB>(grow, xrow, OW, s, d, k0, gw + k0 * L);
    static_for<KB>([&](auto r) LC_INLINE {
      if constexpr (decltype(r)::value > 0)
        if (rem == r) gw_taps_generic<T, decltype(r)::value>(grow, xrow, OW, s, d, full, gw + full * L);
    });
  }
}

// ---------------------------------------------------------------- items

struct Item {
  int64_t n, o0, o1;  // image, band [o0, o1) of output rows along the band axis
  int64_t c0;         // first channel of the group
  Group grp;
};

// Items run image by image, band by band, channel group by channel group.
Item item_of(const DwPlan& plan, int64_t C, int64_t rows, int64_t it) {
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

// Per-thread buffers and the band loop shared by the forward-shaped jobs and
// grad_weight: runs fn(item, band shape, row offsets) for every item in
// [begin, end) once its source band is packed into `tiles`; row offsets[t]
// of output row (oz, oy) is computed by row_offsets.
template <typename T>
struct Tiles {
  TileShape full;         // shape for a whole band
  int64_t elems = 0;      // elements per tile
  std::vector<T> data;    // G tiles
  T* tile(int g) { return data.data() + g * elems; }
};

template <typename S, typename T, typename Fn>
void for_each_band(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& src,
                   int64_t begin, int64_t end, Tiles<T>& tiles, Fn&& fn) {
  const int ab = band_axis(p);
  tiles.full = tile_shape(j, ab, plan.band_len);
  tiles.elems = tiles.full.size() * kLanes<T>;
  tiles.data.resize(tiles.elems * plan.group);
  for (int64_t it = begin; it < end; ++it) {
    const Item item = item_of(plan, p.channels, j.out[ab], it);
    TileShape band = tiles.full;
    band.n[ab] = (item.o1 - item.o0 - 1) * j.s[ab] + (j.k[ab] - 1) * j.d[ab] + 1;
    int64_t q0[2] = {0, 0};
    q0[ab] = item.o0 * j.s[ab];
    pack_tiles<S, T>(j, src, item.n, item.c0, item.grp, q0, band, tiles.elems, tiles.data.data());
    fn(item, band);
  }
}

// Offsets (in elements) of the tile rows that output row (oz, oy) of `item`
// reads through kernel rows (kd, ky), in kernel-row order.
void row_offsets(const Job& j, int ab, const Item& item, const TileShape& band, int64_t oz,
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
int64_t source_rows(const Job& j, int64_t oz, int64_t oy, int64_t* taps) {
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

// Forward-shaped job: dst = conv(src, w) (+ bias).
template <typename S>
void run_forward_job(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& src,
                     const void* wv, const void* bv, const DwView& dst, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  constexpr int L = kLanes<T>;
  const T* w = static_cast<const T*>(wv);
  const T* bias = static_cast<const T*>(bv);
  const int ab = band_axis(p);
  const int64_t G = plan.group, KR = j.k[0] * j.k[1], KV = KR * j.k[2];
  const int64_t outlen = (j.out[2] + kMaxP * j.d[2] + 1) * L;
  std::vector<T> wt(G * KV * L), out(G * outlen);
  std::vector<int64_t> offs(KR), taps(KR);
  std::vector<const T*> rows(KR), wrows(KR);
  std::vector<vec_t<T>> bias_v(G);
  Tiles<T> tiles;
  int64_t packed_c0 = -1;
  const bool in_place = std::is_same_v<S, T> && dst.stride[1] == 1 && j.s[2] == 1;
  for_each_band<S, T>(p, plan, j, src, begin, end, tiles, [&](const Item& item, const TileShape& band) {
    if (item.c0 != packed_c0) {
      for (int g = 0; g < item.grp.G; ++g) {
        const int64_t c = item.c0 + g * L;
        pack_weights<T>(j, p.channels, w, c, wt.data() + g * KV * L);
        T b[L] = {};
        for (int l = 0; l < item.grp.lanes(g, L) && bias; ++l) b[l] = bias[c + l];
        std::memcpy(&bias_v[g], b, sizeof(b));
      }
      packed_c0 = item.c0;
    }
    S* dbase = static_cast<S*>(dst.data) + item.n * dst.stride[0] + item.c0 * dst.stride[1];
    // Whole channel blocks of a channels-innermost float/double destination are
    // written in place (the copy from the row buffer took 8 % of a 13x13
    // forward's profile; without it 1.05x faster).
    const int inplace = in_place ? item.grp.nch / L : 0;
    const Group rest{item.grp.G - inplace, item.grp.nch - inplace * L};
    for_each_row(j, ab, item, [&](int64_t oz, int64_t oy) {
      row_offsets(j, ab, item, band, oz, oy, L, offs.data());
      const int64_t nrows = source_rows(j, oz, oy, taps.data());
      S* drow = dbase + oz * dst.stride[2] + oy * dst.stride[3];
      for (int g = 0; g < item.grp.G; ++g) {
        const T* base = tiles.tile(g);
        for (int64_t t = 0; t < nrows; ++t) {
          rows[t] = base + offs[taps[t]];
          wrows[t] = wt.data() + (g * KV + taps[t] * j.k[2]) * L;
        }
        if (g < inplace) {
          if constexpr (std::is_same_v<S, T>)
            fwd_row<T>(j, rows.data(), wrows.data(), nrows, bias_v[g], drow + g * L, dst.stride[4], true);
        } else {
          fwd_row<T>(j, rows.data(), wrows.data(), nrows, bias_v[g], out.data() + g * outlen);
        }
      }
      if (rest.G > 0)
        unpack_row<S, T>(out.data() + inplace * outlen, outlen, rest, j.out[2], drow + inplace * L * dst.stride[1],
                         dst.stride[1], dst.stride[4]);
    });
  });
}

// Small kernels on channels-innermost tensors are bound by memory traffic:
// compute straight from the source into the destination, no tiles.  Measured
// (AVX2 and AVX-512, 2 threads) faster than the tiles also for
//   - tall, narrow kernels (51x5: 1.1-1.6x): their many kernel rows make the
//     tile window of one output row too big for the L1 cache;
//   - up to 9x9 taps on rows of 48 outputs and more (1.1-1.9x at 56 and 112):
//     the copy into tiles costs more than the per-tap edge outputs, which are
//     few there (on rows of 24-32 the tiles were up to 1.3x faster).
constexpr int64_t kDirectMaxTaps = 27;
constexpr int64_t kDirectWideMaxTaps = 81, kDirectWideMinOutputs = 48;

template <typename T>
bool direct_ok(const ConvGeometry& p, const Job& j, const DwView& src, const DwView& dst) {
  const int64_t rows = j.k[0] * j.k[1], taps = rows * j.k[2];
  const bool small = taps <= kDirectMaxTaps || (taps <= kDirectWideMaxTaps && j.out[2] >= kDirectWideMinOutputs);
  const bool tall = j.k[2] <= 5 && rows >= 4 * j.k[2];
  return j.up[0] == 1 && j.up[1] == 1 && j.up[2] == 1 && j.s[2] == 1 && j.d[2] == 1 &&
         src.stride[1] == 1 && dst.stride[1] == 1 && (small || tall);
}

// Whether the direct path writes its output with non-temporal stores: for
// outputs of 4 MiB and more, where these small kernels are bound by memory
// traffic and a streaming store saves reading each output line first (the
// output would not stay in the L2 cache anyway), when every vector store is
// aligned.
template <typename T>
bool stream_output(const ConvGeometry& p, const Job& j, const DwView& dst) {
  constexpr int64_t kStreamMinBytes = int64_t{4} << 20;
  constexpr int L = kLanes<T>;
  const int64_t bytes = p.batch * p.channels * j.out[0] * j.out[1] * j.out[2] * int64_t{sizeof(T)};
  const bool aligned = reinterpret_cast<uintptr_t>(dst.data) % (L * sizeof(T)) == 0 &&
                       dst.stride[0] % L == 0 && dst.stride[2] % L == 0 && dst.stride[3] % L == 0 &&
                       dst.stride[4] % L == 0;
  return bytes >= kStreamMinBytes && aligned;
}

template <typename T>
void run_direct_job(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& src,
                    const T* w, const T* bias, const DwView& dst, int64_t begin, int64_t end) {
  constexpr int L = kLanes<T>;
  const int ab = band_axis(p);
  const int64_t G = plan.group, KH = j.k[1], KW = j.k[2], KR = j.k[0] * KH, KV = KR * KW;
  std::vector<T> wt(G * KV * L);
  std::vector<int64_t> offs(KR), taps(KR);
  std::vector<const T*> rows(KR), wrows(KR);
  std::vector<vec_t<T>> bias_v(G);
  const bool stream = stream_output<T>(p, j, dst);
  int64_t packed_c0 = -1;
  for (int64_t it = begin; it < end; ++it) {
    const Item item = item_of(plan, p.channels, j.out[ab], it);
    if (item.c0 != packed_c0) {
      for (int g = 0; g < item.grp.G; ++g) {
        pack_weights<T>(j, p.channels, w, item.c0 + g * L, wt.data() + g * KV * L);
        const int lanes = item.grp.lanes(g, L);
        bias_v[g] = !bias ? vec_t<T>{} : lanes == L ? loadu(bias + item.c0 + g * L)
                                                    : simd::load_partial(bias + item.c0 + g * L, lanes);
      }
      packed_c0 = item.c0;
    }
    const T* sbase = static_cast<const T*>(src.data) + item.n * src.stride[0] + item.c0;
    T* dbase = static_cast<T*>(dst.data) + item.n * dst.stride[0] + item.c0;
    for_each_row(j, ab, item, [&](int64_t oz, int64_t oy) {
      int64_t nrows = 0;  // kernel rows that fall inside the input
      for (int64_t kd = 0; kd < j.k[0]; ++kd) {
        const int64_t iz = oz * j.s[0] + kd * j.d[0] - j.off[0];
        if (iz < 0 || iz >= j.src[0]) continue;
        for (int64_t ky = 0; ky < KH; ++ky) {
          const int64_t iy = oy * j.s[1] + ky * j.d[1] - j.off[1];
          if (iy < 0 || iy >= j.src[1]) continue;
          offs[nrows] = iz * src.stride[2] + iy * src.stride[3];
          taps[nrows++] = kd * KH + ky;
        }
      }
      for (int64_t t = 0; t < nrows; ++t) {
        rows[t] = sbase + offs[t];
        wrows[t] = wt.data() + taps[t] * KW * L;
      }
      T* out = dbase + oz * dst.stride[2] + oy * dst.stride[3];
      const DirectRow<T> r{rows.data(), wrows.data(), nrows, KR, j.src[2], j.off[2], KW, j.out[2], src.stride[4],
                           static_cast<int>(item.grp.G), item.grp.lanes(item.grp.G - 1, L), KV * L,
                           bias_v.data(), out, dst.stride[4]};
      stream ? fwd_row_direct<T, true>(r) : fwd_row_direct<T, false>(r);
    });
  }
  if (stream) simd::stream_fence();
}

// The common small 2-D kernels on tensors with W innermost (NCHW): one
// channel plane at a time, vectors along W, straight from the input
// (depthwise_planar.h); the channel-block tiles would transpose the data in
// and out.  Measured against the tiles (AVX-512, 2 threads, NCHW, forward and
// grad_input alike): 3x3 1.1-1.8x at 20-112 pixels wide, 5x5 1.2x, 7x7
// 1.0-1.2x.
template <typename T>
bool planar_ok(const ConvGeometry& p, const Job& j, const DwView& src, const DwView& dst) {
  return p.spatial_dims == 2 && j.up[1] == 1 && j.up[2] == 1 && j.s[1] == 1 && j.s[2] == 1 && j.d[1] == 1 &&
         src.stride[4] == 1 && dst.stride[4] == 1 && planar_shape_ok(j.k[1], j.k[2]) && j.out[2] >= kLanes<T>;
}

template <typename T>
void run_planar_job(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& src,
                    const T* w, const T* bias, const DwView& dst, int64_t begin, int64_t end) {
  const int64_t KV = j.k[1] * j.k[2];
  const std::vector<T> zeros(j.src[2], T(0));
  std::vector<T> wc(KV);
  PlanarPlane<T> pl{};
  pl.src_sy = src.stride[3];
  pl.H = j.src[1], pl.W = j.src[2];
  pl.zeros = zeros.data();
  pl.w = wc.data();
  pl.KH = j.k[1], pl.KW = j.k[2];
  pl.dx = j.d[2], pl.offy = j.off[1], pl.offx = j.off[2];
  pl.OW = j.out[2];
  pl.out_sy = dst.stride[3];
  for (int64_t it = begin; it < end; ++it) {
    const Item item = item_of(plan, p.channels, j.out[1], it);
    pl.y0 = item.o0, pl.y1 = item.o1;
    for (int64_t c = item.c0; c < item.c0 + item.grp.nch; ++c) {
      for (int64_t t = 0; t < KV; ++t) wc[t] = w[c * KV + (j.flip ? KV - 1 - t : t)];
      pl.src = static_cast<const T*>(src.data) + item.n * src.stride[0] + c * src.stride[1];
      pl.out = static_cast<T*>(dst.data) + item.n * dst.stride[0] + c * dst.stride[1];
      pl.bias = bias ? bias[c] : T(0);
      planar_plane_any<T>(pl);
    }
  }
}

template <typename S>
void run_job(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& src,
             const void* w, const void* bias, const DwView& dst, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  if constexpr (std::is_same_v<S, T>) {
    if (direct_ok<T>(p, j, src, dst))
      return run_direct_job<T>(p, plan, j, src, static_cast<const T*>(w),
                               static_cast<const T*>(bias), dst, begin, end);
    if (planar_ok<T>(p, j, src, dst))
      return run_planar_job<T>(p, plan, j, src, static_cast<const T*>(w),
                               static_cast<const T*>(bias), dst, begin, end);
  }
  run_forward_job<S>(p, plan, j, src, w, bias, dst, begin, end);
}

// One channel block's weight gradient, accumulated tap-major (src[t*L + l] for
// tap t, lane l), added into the (C, KV) gradient at the block's first channel.
template <typename T>
void add_block_gradient(const T* src, int64_t KV, int lanes, T* gw) {
  constexpr int L = kLanes<T>;
  for (int l = 0; l < lanes; ++l)
    for (int64_t t = 0; t < KV; ++t) gw[l * KV + t] += src[t * L + l];
}

// grad_weight of 3x3 kernels on channels-innermost (channels_last) tensors,
// read in place: for each channel block, nine accumulators (one per tap) over
// every output pixel, gy[pixel] times the input pixel each tap reads.  The
// tiles, which copy the input first, took 2.4-3.2x longer (AVX-512, 8x64x56x56,
// 8x128x28x28 and dilation 2, one and two threads).
template <typename T>
bool gw_direct_ok(const ConvGeometry& p, const Job& j, const DwView& x, const DwView& gy) {
  return p.spatial_dims == 2 && j.k[1] == 3 && j.k[2] == 3 && x.stride[1] == 1 && gy.stride[1] == 1;
}

// One output row: acc[ky*3 + kx] += gy[ox] * x_ky[ox*s + kx*d - off] for the
// kernel rows ky in ROWS (a bit mask: those inside the input).
template <typename T, int ROWS, typename Lanes>
[[gnu::noinline]] void gw_direct_row(const T* const (&xr)[3], const T* gr, int64_t OW, int64_t W, int64_t s,
                                     int64_t d, int64_t off, int64_t xps, int64_t gps, vec_t<T> (&acc_out)[9],
                                     const Lanes& lanes) {
  vec_t<T> acc[9];
  static_for<9>([&](auto t) LC_INLINE { acc[t] = acc_out[t]; });
  // outputs whose three taps all lie inside the row
  const int64_t lo = std::min(OW, (off + s - 1) / s);
  const int64_t hi = std::clamp<int64_t>(W - 1 - 2 * d + off < 0 ? 0 : (W - 1 - 2 * d + off) / s + 1, lo, OW);
  for (int64_t ox = lo; ox < hi; ++ox) {
    const vec_t<T> g = simd::in_register(lanes.load(gr + ox * gps));
    const int64_t i0 = (ox * s - off) * xps;
    static_for<3>([&](auto ky) LC_INLINE {
      if constexpr ((ROWS >> decltype(ky)::value) & 1) {
        static_for<3>([&](auto kx) LC_INLINE {
          acc[ky * 3 + kx] += g * lanes.load(xr[ky] + i0 + kx * d * xps);
        });
      }
    });
  }
  auto edge = [&](int64_t ox) {
    const vec_t<T> g = lanes.load(gr + ox * gps);
    static_for<3>([&](auto ky) LC_INLINE {
      if constexpr ((ROWS >> decltype(ky)::value) & 1) {
        static_for<3>([&](auto kx) LC_INLINE {
          const int64_t ix = ox * s + kx * d - off;
          if (ix >= 0 && ix < W) acc[ky * 3 + kx] += g * lanes.load(xr[ky] + ix * xps);
        });
      }
    });
  };
  for (int64_t ox = 0; ox < lo; ++ox) edge(ox);
  for (int64_t ox = hi; ox < OW; ++ox) edge(ox);
  static_for<9>([&](auto t) LC_INLINE { acc_out[t] = acc[t]; });
}

template <typename T>
void run_direct_backward_weight(const ConvGeometry& p, const DwPlan& plan, const Job& j, const DwView& x,
                                const DwView& gy, T* gw, int64_t begin, int64_t end) {
  constexpr int L = kLanes<T>;
  for (int64_t it = begin; it < end; ++it) {
    const Item item = item_of(plan, p.channels, j.out[1], it);
    for (int g = 0; g < item.grp.G; ++g) {
      const int64_t c = item.c0 + g * L;
      const int lanes = item.grp.lanes(g, L);
      vec_t<T> acc[9] = {};
      const T* xb = static_cast<const T*>(x.data) + item.n * x.stride[0] + c;
      const T* gb = static_cast<const T*>(gy.data) + item.n * gy.stride[0] + c;
      for (int64_t oy = item.o0; oy < item.o1; ++oy) {
        const T* xr[3] = {xb, xb, xb};
        int rows = 0;
        for (int ky = 0; ky < 3; ++ky) {
          const int64_t iy = oy * j.s[1] + ky * j.d[1] - j.off[1];
          if (iy < 0 || iy >= j.src[1]) continue;
          xr[ky] = xb + iy * x.stride[3];
          rows |= 1 << ky;
        }
        const T* gr = gb + oy * gy.stride[3];
        auto row = [&](const auto& ln) {
          static_for<8>([&](auto m) LC_INLINE {  // the mask of rows as a template argument
            constexpr int M = decltype(m)::value;
            if constexpr (M != 0)
              if (rows == M)
                gw_direct_row<T, M>(xr, gr, j.out[2], j.src[2], j.s[2], j.d[2], j.off[2], x.stride[4],
                                    gy.stride[4], acc, ln);
          });
        };
        lanes == L ? row(AllLanes<T>{}) : row(FirstLanes<T>{lanes});
      }
      T sums[9 * L];
      std::memcpy(sums, acc, sizeof(sums));
      add_block_gradient<T>(sums, 9, lanes, gw + c * 9);
    }
  }
}

template <typename S>
void run_backward_weight(const ConvGeometry& p, const DwPlan& plan, const DwView& x,
                         const DwView& gy, void* partial, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  constexpr int L = kLanes<T>;
  const Job j = forward_job(p);
  const int ab = band_axis(p);
  const int64_t G = plan.group, KR = j.k[0] * j.k[1], KW = j.k[2], KV = KR * KW;
  const int64_t OW = j.out[2];
  const int64_t gwidth = OW + kMaxP * j.d[2] + 1;  // zeros past the last output
  std::vector<T> gwt(G * KV * L), grow(G * gwidth * L);
  std::vector<int64_t> offs(KR), taps(KR);
  Tiles<T> tiles;
  T* gw = static_cast<T*>(partial);
  const S* gbase0 = static_cast<const S*>(gy.data);
  for_each_band<S, T>(p, plan, j, x, begin, end, tiles, [&](const Item& item, const TileShape& band) {
    std::fill(gwt.begin(), gwt.end(), T(0));
    const S* gbase = gbase0 + item.n * gy.stride[0] + item.c0 * gy.stride[1];
    for_each_row(j, ab, item, [&](int64_t oz, int64_t oy) {
      pack_row<S>(gbase + oz * gy.stride[2] + oy * gy.stride[3], gy.stride[1], gy.stride[4], item.grp,
                  OW, grow.data(), gwidth * L, gwidth, 1, 0);
      row_offsets(j, ab, item, band, oz, oy, L, offs.data());
      const int64_t nrows = source_rows(j, oz, oy, taps.data());
      for (int g = 0; g < item.grp.G; ++g)
        for (int64_t t = 0; t < nrows; ++t)
          gw_row<T>(j, grow.data() + g * gwidth * L, tiles.tile(g) + offs[taps[t]],
                    gwt.data() + (g * KV + taps[t] * KW) * L);
    });
    for (int g = 0; g < item.grp.G; ++g)
      add_block_gradient<T>(gwt.data() + g * KV * L, KV, item.grp.lanes(g, L), gw + (item.c0 + g * L) * KV);
  });
}

template <typename T>
DwPlan make_plan(const ConvGeometry& p, DwOp op, int threads, bool channels_inner) {
  DwPlan plan;
  plan.lanes = kLanes<T>;
  plan.channel_blocks = (p.channels + plan.lanes - 1) / plan.lanes;
  plan.batch = p.batch;
  const Job j = op == DwOp::backward_input ? backward_input_job(p) : forward_job(p);
  const int ab = band_axis(p);
  const int64_t rows = std::max<int64_t>(j.out[ab], 1);
  auto tile_bytes = [&](int64_t len) {
    return tile_shape(j, ab, len).size() * plan.lanes * static_cast<int64_t>(sizeof(T));
  };
  // An output row reads a window of tile rows (slices in 3-D); the windows of
  // the blocks of a group should stay in the L2 cache together.
  const int64_t window = tile_bytes(1);
  constexpr int64_t kWindowBudget = 256 * 1024;
  if (channels_inner) {
    // Channels innermost: a group of blocks reads whole cache lines (ideally
    // whole pixels) of the source in one pass.
    plan.group = std::clamp<int64_t>(kWindowBudget / window, 1, plan.channel_blocks);
  }
  // Cap the tiles' memory (they are reused from item to item).
  constexpr int64_t kTileCap = 16 << 20;
  int64_t len = rows;
  while (len > 1 && plan.group * tile_bytes(len) > kTileCap) len = (len + 1) / 2;
  plan.band_len = len;
  plan.bands = (rows + len - 1) / len;
  // Enough items for every thread.
  const int64_t per_band = plan.batch * plan.groups();
  if (per_band * plan.bands < 4 * threads) {
    const int64_t bands = std::min(rows, (4 * threads + per_band - 1) / per_band);
    plan.band_len = std::min(plan.band_len, (rows + bands - 1) / bands);
    plan.bands = (rows + plan.band_len - 1) / plan.band_len;
  }
  return plan;
}

}  // namespace

template <typename S>
DwPlan depthwise_plan(const ConvGeometry& p, DwOp op, int threads, bool channels_inner) {
  return make_plan<typename compute_of<S>::type>(p, op, threads, channels_inner);
}

template <typename S>
void depthwise_forward(const ConvGeometry& p, const DwPlan& plan, DwView x, const void* w,
                       const void* bias, DwView y, int64_t begin, int64_t end) {
  run_job<S>(p, plan, forward_job(p), x, w, bias, y, begin, end);
}

template <typename S>
void depthwise_backward_input(const ConvGeometry& p, const DwPlan& plan, DwView gy, const void* w,
                              DwView gx, int64_t begin, int64_t end) {
  run_job<S>(p, plan, backward_input_job(p), gy, w, nullptr, gx, begin, end);
}

template <typename S>
void depthwise_backward_weight(const ConvGeometry& p, const DwPlan& plan, DwView x, DwView gy,
                               void* gw_partial, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  if constexpr (std::is_same_v<S, T>) {
    const Job j = forward_job(p);
    if (gw_direct_ok<T>(p, j, x, gy))
      return run_direct_backward_weight<T>(p, plan, j, x, gy, static_cast<T*>(gw_partial), begin, end);
  }
  run_backward_weight<S>(p, plan, x, gy, gw_partial, begin, end);
}

#define LEANCONV_DEPTHWISE_INSTANTIATE(S)                                                          \
  template DwPlan depthwise_plan<S>(const ConvGeometry&, DwOp, int, bool);                         \
  template void depthwise_forward<S>(const ConvGeometry&, const DwPlan&, DwView, const void*,      \
                                     const void*, DwView, int64_t, int64_t);                       \
  template void depthwise_backward_input<S>(const ConvGeometry&, const DwPlan&, DwView, const void*, \
                                            DwView, int64_t, int64_t);                             \
  template void depthwise_backward_weight<S>(const ConvGeometry&, const DwPlan&, DwView, DwView,   \
                                             void*, int64_t, int64_t);
LEANCONV_DEPTHWISE_INSTANTIATE(float)
LEANCONV_DEPTHWISE_INSTANTIATE(double)
LEANCONV_DEPTHWISE_INSTANTIATE(bf16)
#undef LEANCONV_DEPTHWISE_INSTANTIATE

}  // namespace leanconv::cpu::LEANCONV_ISA
