// The planar depthwise micro-kernel: one channel plane at a time, vectors
// along W (NCHW-like tensors, W innermost), straight from the input: every
// tap is a scalar weight times an input vector loaded at the tap's offset.
// Nothing is copied or transposed (the channel-block tiles transpose NCHW
// data in and out, which at 3x3 costs more than the arithmetic); the vectors
// at the ends of a row mask the lanes that fall outside the input, and
// kernel rows outside it read a row of zeros.  The common 2-D kernels (3x3,
// 5x5, 7x7; stride and dilation 1 along H) run R output rows at a time: each
// input vector loaded once feeds every output row it reaches, and R*PB
// independent chains of FMAs hide their latency.  (One output row at a time,
// any kernel, ran up to 2x slower than the channel-block tiles: not kept.)
// Include only from depthwise_planar_<dtype>_kernel.cpp (one file per dtype,
// compiled once per ISA variant).
#pragma once

#include <algorithm>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "cpu/depthwise_job.h"
#include "cpu/depthwise_tile.h"
#include "cpu/simd.h"

namespace leanconv::cpu::LEANCONV_ISA {

// Output rows [y0, y1) of one channel of a 2-D forward-shaped convolution
// (stride and dilation 1 along H) whose source and destination have W
// innermost (stride 1):
//   out[oy][x] = bias + sum w[ky][kx] * src[oy + ky - offy][x + kx*dx - offx]
// where source positions outside the input count as zero.
template <typename T>
struct PlanarPlane {
  const T* src;
  int64_t src_sy;  // source stride of H (elements)
  int64_t H, W;    // source extents
  const T* zeros;  // at least W zeros: the kernel rows outside the input
  const T* w;      // kH*kW weights
  int64_t KH, KW;
  int64_t dx, offy, offx;
  int64_t OW;
  T bias;
  T* out;
  int64_t out_sy;
  int64_t y0, y1;
};

// Whether planar_plane_any has a compiled shape for the kernel: 3x3, and with
// 32 vector registers 5x5 and 7x7 (with 16, AVX2, those ran 1.15-1.5x slower
// than the channel-block tiles; 3x3 1.1-1.6x faster).
inline constexpr bool kPlanarBig = simd::kVecRegs >= 32;
inline bool planar_shape_ok(int64_t KH, int64_t KW) {
  return KH == KW && (KW == 3 || (kPlanarBig && (KW == 5 || KW == 7)));
}

// Output rows per pass (R) and vectors per block (P) for a kernel of NR rows:
// R*P accumulators next to the weights.  With 32 registers 3x3 runs 8 rows of
// 2 vectors (1.1-1.2x faster than 4 x 4 at 20-56 pixels wide), the larger
// kernels 4 x 4.
template <int NR>
inline constexpr int kPlanarRows = simd::kVecRegs >= 32 ? (NR == 3 ? 8 : 4) : 2;
template <int NR>
inline constexpr int kPlanarVectors = simd::kVecRegs >= 32 && NR == 3 ? 2 : 4;

// What every block of a row shares.
template <typename T>
struct PlanarRowArgs {
  const T* w;                // the weights, kernel row after kernel row
  const simd::vec_t<T>* wv;  // the same as splats, when held in registers
  int64_t dx, offx, W, OW;
  simd::vec_t<T> bias;
  T* out;  // output row 0, x = 0
  int64_t out_sy;
};

// A block of R output rows x PB vectors at xs[0 .. PB-1] of a kernel of NR
// rows of KW taps: in[i] (i < R + NR - 1) point at x = 0 of consecutive
// source rows, output row j reads in[j .. j + NR - 1]; each loaded vector
// feeds every row it reaches.  HOIST: the weights from registers (a.wv).  MASKED: the vectors reach outside
// [0, W) (lanes outside read as zero).  The last vector of each row holds
// `last` outputs (masked store when < L).
template <typename T, int R, int PB, int NR, int KW, bool HOIST, bool MASKED>
[[gnu::always_inline]] inline void planar_block(const PlanarRowArgs<T>& a, const T* const* in,
                                                const int64_t (&xs)[PB], int last) {
  constexpr int L = kLanes<T>;
  const int64_t dx = a.dx, offx = a.offx, W = a.W;
  simd::vec_t<T> acc[R][PB];
  simd::static_for<R>([&](auto j) __attribute__((always_inline)) {
    simd::static_for<PB>([&](auto v) __attribute__((always_inline)) { acc[j][v] = a.bias; });
  });
  // Masked: each (tap, vector) lane range built once for the whole block.
  using Range = simd::LaneRange<T>;
  alignas(64) unsigned char range_mem[MASKED ? sizeof(Range) * KW * PB : 1];
  Range* ranges = reinterpret_cast<Range*>(range_mem);
  auto range_of = [&](int64_t p) __attribute__((always_inline)) {
    const int lo = static_cast<int>(std::clamp<int64_t>(-p, 0, L));
    return Range(lo, static_cast<int>(std::clamp<int64_t>(W - p, lo, L)));
  };
  if constexpr (MASKED)
    for (int k = 0; k < KW; ++k)
      for (int v = 0; v < PB; ++v) new (&ranges[k * PB + v]) Range(range_of(xs[v] + k * dx - offx));
  // source row `row`, tap k, vector v
  auto load = [&](const T* row, int64_t k, int v) __attribute__((always_inline)) {
    const int64_t p = xs[v] + k * dx - offx;
    if constexpr (MASKED) return ranges[k * PB + v].load(row + p);
    else return simd::loadu(row + p);
  };
  auto weight = [&](int64_t i) __attribute__((always_inline)) {
    if constexpr (HOIST) return a.wv[i];
    else return simd::splat(a.w[i]);
  };
  simd::static_for<R + NR - 1>([&](auto i) __attribute__((always_inline)) {
    simd::static_for<KW>([&](auto k) __attribute__((always_inline)) {
      simd::static_for<PB>([&](auto v) __attribute__((always_inline)) {
        const simd::vec_t<T> x = simd::in_register(load(in[i], k, v));
        simd::static_for<R>([&](auto j) __attribute__((always_inline)) {
          constexpr int ky = decltype(i)::value - decltype(j)::value;
          if constexpr (ky >= 0 && ky < NR) acc[j][v] += x * weight(ky * KW + k);
        });
      });
    });
  });
  simd::static_for<R>([&](auto j) __attribute__((always_inline)) {
    T* out = a.out + j * a.out_sy;
    simd::static_for<PB - 1>([&](auto v) __attribute__((always_inline)) { simd::storeu(out + xs[v], acc[j][v]); });
    if (last == L) {
      simd::storeu(out + xs[PB - 1], acc[j][PB - 1]);
    } else {
      simd::store_partial(out + xs[PB - 1], acc[j][PB - 1], last);
    }
  });
}

// R output rows: the vectors whose loads stay inside [0, W) in blocks of P
// (then one block for the rest), the others, at the ends of the rows, in
// masked blocks of up to P.
template <typename T, int R, int P, int NR, int KW, bool HOIST>
[[gnu::always_inline]] inline void planar_rows(const PlanarRowArgs<T>& a, const T* const* in) {
  constexpr int L = kLanes<T>;
  static_assert(P >= 1 && P <= 4, "blocks of up to 4 vectors");
  const int64_t OW = a.OW, nv = (OW + L - 1) / L;
  const int last_lanes = static_cast<int>(OW - (nv - 1) * L);
  const int64_t reach = (KW - 1) * a.dx - a.offx;  // the last tap's offset
  // Vector v is inside when v*L >= offx and v*L + L + reach <= W.
  const int64_t vl = std::min<int64_t>(nv, (std::max<int64_t>(a.offx, 0) + L - 1) / L);
  const int64_t fit = a.W - reach - L;
  const int64_t vr = fit < 0 ? vl : std::clamp<int64_t>(fit / L + 1, vl, nv);
  auto run = [&](auto masked, const auto& xs, int last) __attribute__((always_inline)) {
    constexpr int PB = std::extent_v<std::remove_reference_t<decltype(xs)>>;
    planar_block<T, R, PB, NR, KW, HOIST, decltype(masked)::value>(a, in, xs, last);
  };
  const std::integral_constant<bool, false> inside;
  const std::integral_constant<bool, true> masked;
  int64_t v = vl;
  for (; v + P <= vr; v += P) {
    int64_t xs[P];
    for (int i = 0; i < P; ++i) xs[i] = (v + i) * L;
    run(inside, xs, v + P == nv ? last_lanes : L);
  }
  const int last_in = vr == nv ? last_lanes : L;
  if (P > 3 && vr - v == 3) {
    const int64_t xs[3] = {v * L, v * L + L, v * L + 2 * L};
    run(inside, xs, last_in);
  } else if (P > 2 && vr - v == 2) {
    const int64_t xs[2] = {v * L, v * L + L};
    run(inside, xs, last_in);
  } else if (vr - v == 1) {
    const int64_t xs[1] = {v * L};
    run(inside, xs, last_in);
  }
  // The vectors at the ends, [0, vl) and [vr, nv), in masked blocks of up to P.
  int64_t ends[4];
  int n = 0;
  auto flush = [&]() __attribute__((always_inline)) {
    const int last = ends[n - 1] == (nv - 1) * L ? last_lanes : L;
    if (P > 3 && n == 4) run(masked, ends, last);
    else if (P > 2 && n == 3) run(masked, reinterpret_cast<const int64_t(&)[3]>(ends), last);
    else if (P > 1 && n == 2) run(masked, reinterpret_cast<const int64_t(&)[2]>(ends), last);
    else run(masked, reinterpret_cast<const int64_t(&)[1]>(ends), last);
    n = 0;
  };
  for (int64_t u = 0; u < nv; ++u) {
    if (u == vl) u = std::max(vr, vl);
    if (u >= nv) break;
    ends[n++] = u * L;
    if (n == P) flush();
  }
  if (n > 0) flush();
}

// All the rows of a plane: kPlanarR output rows at a time, then one at a
// time.  Not inlined: each shape's loop gets its own registers.
template <typename T, int NR, int KW>
[[gnu::noinline]] void planar_plane(const PlanarPlane<T>& pl) {
  constexpr int R = kPlanarRows<NR>, P = kPlanarVectors<NR>;
  constexpr bool hoist = NR * KW + R * P + P <= simd::kVecRegs;
  PlanarRowArgs<T> a{pl.w, nullptr, pl.dx, pl.offx, pl.W, pl.OW, simd::splat(pl.bias), nullptr, pl.out_sy};
  simd::vec_t<T> wv[hoist ? NR * KW : 1];
  if constexpr (hoist) {
#pragma GCC unroll 64
    for (int i = 0; i < NR * KW; ++i) wv[i] = simd::splat(pl.w[i]);
    a.wv = wv;
  }
  const T* in[R + NR - 1];
  auto row = [&](int64_t iy) { return iy >= 0 && iy < pl.H ? pl.src + iy * pl.src_sy : pl.zeros; };
  int64_t oy = pl.y0;
  for (; oy + R <= pl.y1; oy += R) {
    for (int i = 0; i < R + NR - 1; ++i) in[i] = row(oy - pl.offy + i);
    a.out = pl.out + oy * pl.out_sy;
    planar_rows<T, R, P, NR, KW, hoist>(a, in);
  }
  for (; oy < pl.y1; ++oy) {
    for (int i = 0; i < NR; ++i) in[i] = row(oy - pl.offy + i);
    a.out = pl.out + oy * pl.out_sy;
    planar_rows<T, 1, P, NR, KW, hoist>(a, in);
  }
}

// Runs the compiled shape of planar_plane (planar_shape_ok(KH, KW) holds).
template <typename T>
void planar_plane_any(const PlanarPlane<T>& pl) {
  if constexpr (kPlanarBig) {
    if (pl.KW == 5) return planar_plane<T, 5, 5>(pl);
    if (pl.KW == 7) return planar_plane<T, 7, 7>(pl);
  }
  planar_plane<T, 3, 3>(pl);
}

namespace {

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

}  // namespace

template <typename T>
bool depthwise_planar_job(const ConvGeometry& p, const DwPlan& plan, DwOp op, const DwView& src, const T* w,
                          const T* bias, const DwView& dst, int64_t begin, int64_t end) {
  const Job j = job_of(p, op);
  if (!planar_ok<T>(p, j, src, dst)) return false;
  run_planar_job<T>(p, plan, j, src, w, bias, dst, begin, end);
  return true;
}

}  // namespace leanconv::cpu::LEANCONV_ISA

#define LEANCONV_DEPTHWISE_PLANAR_INSTANTIATE(T)                                                       \
  namespace leanconv::cpu::LEANCONV_ISA {                                                              \
  template bool depthwise_planar_job<T>(const ConvGeometry&, const DwPlan&, DwOp, const DwView&, const T*, \
                                        const T*, const DwView&, int64_t, int64_t);                    \
  }
