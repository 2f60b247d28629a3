// CPU depthwise convolution kernels.  Compiled once per ISA variant into
// namespace leanconv::cpu::<LEANCONV_ISA> (see CMakeLists.txt).
//
// Every op is a "job": a forward-shaped convolution of a source tensor into a
// destination tensor, one channel block (a vector of L channels) at a time.
//   forward         source x,  kernel w,          tile position q = i + pad
//   grad_input      source gy, kernel w flipped,  q = o*stride + (k-1)*dil - pad,
//                   then a stride-1 convolution (zeros between the strided rows)
//   grad_weight     correlates the x tile with the gy rows.
// The source of one (block, image, band) is packed into a zero-padded tile
// (D, H, W, L); the micro-kernels then keep a block of outputs (or of weight
// gradients) and a block of kernel taps in vector registers and slide along W,
// so each loaded input vector feeds several FMAs.
#include "cpu/depthwise_kernel.h"

#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/depthwise_tile.h"
#include "cpu/simd.h"

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

using simd::loadu;
using simd::storeu;
using simd::vec_t;

template <int N, typename F>
[[gnu::always_inline]] inline void static_for(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I>{}), ...);
  }(std::make_integer_sequence<int, N>{});
}

// Register blocking.  Forward: P outputs x KB taps (P + KB + 1 vector
// registers); grad_weight: GP outputs x GKB taps.  P and GKB chains of
// dependent FMAs hide the FMA latency.
constexpr bool kBigRegs = simd::kVecRegs >= 32;
constexpr int kFwdP = kBigRegs ? 16 : 10;
constexpr int kFwdKB = kBigRegs ? 12 : 4;
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

Job forward_job(const DepthwiseParams& p) {
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

Job backward_input_job(const DepthwiseParams& p) {
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

int band_axis(const DepthwiseParams& p) { return p.spatial_dims == 3 ? 0 : 1; }

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
  // Blocks of outputs may run up to kMaxP*d past the last output, and tap
  // blocks up to kGwKB taps past the last tap: keep zeros there.
  t.n[2] = (j.out[2] + kMaxP * j.d[2]) * j.s[2] + (j.k[2] + kGwKB) * j.d[2] + 1;
  return t;
}

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Packs the source rows of (image n, channel block c0) for the tile whose
// first position along the D and H axes is q0[0], q0[1].
template <typename S, typename T>
void pack_tile(const Job& j, const DwView& v, int64_t n, int64_t c0, int lanes, const int64_t q0[2],
               const TileShape& ts, T* tile) {
  constexpr int L = kLanes<T>;
  const S* base = static_cast<const S*>(v.data) + n * v.stride[0] + c0 * v.stride[1];
  const int64_t rowlen = ts.n[2] * L;
  // Positions past the last one any real output reads stay zero (not source
  // data): the padded blocks of outputs read them, and 0 * inf would be NaN.
  const int64_t ext = (j.out[2] - 1) * j.s[2] + (j.k[2] - 1) * j.d[2] + 1;
  for (int64_t z = 0; z < ts.n[0]; ++z) {
    const int64_t tz = q0[0] + z - j.off[0];
    const int64_t iz = floor_div(tz, j.up[0]);
    const bool zok = tz == iz * j.up[0] && iz >= 0 && iz < j.src[0];
    for (int64_t y = 0; y < ts.n[1]; ++y) {
      T* drow = tile + (z * ts.n[1] + y) * rowlen;
      const int64_t ty = q0[1] + y - j.off[1];
      const int64_t iy = floor_div(ty, j.up[1]);
      if (!zok || ty != iy * j.up[1] || iy < 0 || iy >= j.src[1]) {
        std::fill(drow, drow + rowlen, T(0));
        continue;
      }
      pack_row<S>(base + iz * v.stride[2] + iy * v.stride[3], v.stride[1], v.stride[4], lanes,
                  j.src[2], drow, ext, j.up[2], j.off[2]);
      std::fill(drow + ext * L, drow + rowlen, T(0));
    }
  }
}

// Weights of channel block c0 as (kD, kH, kW, L), flipped in every axis if asked.
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

// acc[j] += sum_k in[(j + k)*step] * w[k] for j < P, k < KB: each input vector
// is loaded once and feeds up to KB accumulators.
template <typename T, int P, int KB>
[[gnu::always_inline]] inline void fwd_slide(const T* in, int64_t step, const T* w,
                                             vec_t<T> (&acc)[P]) {
  constexpr int L = kLanes<T>;
  vec_t<T> wv[KB];
  static_for<KB>([&](auto k) { wv[k] = loadu(w + k * L); });
  static_for<P + KB - 1>([&](auto i) {
    const vec_t<T> v = loadu(in + i * step);
    static_for<KB>([&](auto k) {
      constexpr int jj = decltype(i)::value - decltype(k)::value;
      if constexpr (jj >= 0 && jj < P) acc[jj] += v * wv[k];
    });
  });
}

// One block of P outputs x0 + j*d (j < P) of one output row, stride 1 along
// W: rows[t] are the tile rows of the kernel rows t, wrow the matching weights.
template <typename T, int P>
[[gnu::always_inline]] inline void fwd_block_slide(const T* const* rows, int64_t nrows,
                                                   const T* wt, int64_t KW, int64_t d, int64_t x0,
                                                   vec_t<T> bias, T* out) {
  constexpr int L = kLanes<T>;
  constexpr int KB = kFwdKB;
  vec_t<T> acc[P];
  static_for<P>([&](auto jj) { acc[jj] = bias; });
  const int64_t step = d * L;
  const int64_t full = KW / KB * KB;
  const int rem = static_cast<int>(KW - full);
  for (int64_t t = 0; t < nrows; ++t) {
    const T* in = rows[t] + x0 * L;
    const T* w = wt + t * KW * L;
    for (int64_t k0 = 0; k0 < full; k0 += KB) fwd_slide<T, P, KB>(in + k0 * step, step, w + k0 * L, acc);
    static_for<KB>([&](auto r) {
      if constexpr (decltype(r)::value > 0)
        if (rem == r) fwd_slide<T, P, decltype(r)::value>(in + full * step, step, w + full * L, acc);
    });
  }
  static_for<P>([&](auto jj) { storeu(out + (x0 + jj * d) * L, acc[jj]); });
}

// Any stride: P consecutive outputs, one weight vector at a time.
template <typename T, int P>
[[gnu::always_inline]] inline void fwd_block_generic(const T* const* rows, int64_t nrows,
                                                     const T* wt, int64_t KW, int64_t s,
                                                     int64_t d, int64_t x0, vec_t<T> bias,
                                                     T* out) {
  constexpr int L = kLanes<T>;
  vec_t<T> acc[P];
  static_for<P>([&](auto jj) { acc[jj] = bias; });
  for (int64_t t = 0; t < nrows; ++t) {
    const T* in = rows[t] + x0 * s * L;
    const T* w = wt + t * KW * L;
    for (int64_t kx = 0; kx < KW; ++kx) {
      const vec_t<T> wv = loadu(w + kx * L);
      const T* b = in + kx * d * L;
      static_for<P>([&](auto jj) { acc[jj] += loadu(b + jj * s * L) * wv; });
    }
  }
  static_for<P>([&](auto jj) { storeu(out + (x0 + jj) * L, acc[jj]); });
}

// One output row into `out` (>= (OW + kMaxP*d) * L values).
template <typename T>
void fwd_row(const Job& j, const T* const* rows, int64_t nrows, const T* wt, vec_t<T> bias, T* out) {
  const int64_t OW = j.out[2], KW = j.k[2], s = j.s[2], d = j.d[2];
  if (s == 1) {
    constexpr int P = kFwdP;
    for (int64_t r = 0; r < std::min(d, OW); ++r) {
      const int64_t nr = (OW - r + d - 1) / d;  // outputs r, r+d, ... < OW
      for (int64_t b = 0; b < nr; b += P) fwd_block_slide<T, P>(rows, nrows, wt, KW, d, r + b * d, bias, out);
    }
  } else {
    constexpr int P = kFwdGenericP;
    for (int64_t x0 = 0; x0 < OW; x0 += P) fwd_block_generic<T, P>(rows, nrows, wt, KW, s, d, x0, bias, out);
  }
}

// ---------------------------------------------------------------- grad_weight micro-kernels

// acc[k] += sum_j g[j*gstep] * in[(j + k)*step] for j < P, k < KB.
template <typename T, int P, int KB>
[[gnu::always_inline]] inline void gw_slide(const T* g, const T* in, int64_t step,
                                            vec_t<T> (&acc)[KB]) {
  vec_t<T> gv[P];
  static_for<P>([&](auto jj) { gv[jj] = loadu(g + jj * step); });
  static_for<P + KB - 1>([&](auto i) {
    const vec_t<T> v = loadu(in + i * step);
    static_for<KB>([&](auto k) {
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
  static_for<KB>([&](auto k) { acc[k] = loadu(gw + k * L); });
  const int64_t step = d * L;
  for (int64_t r = 0; r < std::min(d, OW); ++r) {
    const int64_t nr = (OW - r + d - 1) / d;
    for (int64_t b = 0; b < nr; b += P) {
      const int64_t x0 = r + b * d;
      gw_slide<T, P, KB>(grow + x0 * L, xrow + (x0 + k0 * d) * L, step, acc);
    }
  }
  static_for<KB>([&](auto k) { storeu(gw + k * L, acc[k]); });
}

// Any stride: acc[k] += sum_x g[x] * in[x*s + (k0+k)*d].
template <typename T, int KB>
[[gnu::always_inline]] inline void gw_taps_generic(const T* grow, const T* xrow, int64_t OW,
                                                   int64_t s, int64_t d, int64_t k0, T* gw) {
  constexpr int L = kLanes<T>;
  vec_t<T> acc[KB];
  static_for<KB>([&](auto k) { acc[k] = loadu(gw + k * L); });
  const T* in = xrow + k0 * d * L;
  for (int64_t x = 0; x < OW; ++x) {
    const vec_t<T> g = loadu(grow + x * L);
    static_for<KB>([&](auto k) { acc[k] += loadu(in + (x * s + k * d) * L) * g; });
  }
  static_for<KB>([&](auto k) { storeu(gw + k * L, acc[k]); });
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
    static_for<KB>([&](auto r) {
      if constexpr (decltype(r)::value > 0)
        if (rem == r) gw_taps_slide<T, decltype(r)::value>(grow, xrow, OW, d, full, gw + full * L);
    });
  } else {
    for (int64_t k0 = 0; k0 < full; k0 += KB) gw_taps_generic<T, KB>(grow, xrow, OW, s, d, k0, gw + k0 * L);
    static_for<KB>([&](auto r) {
      if constexpr (decltype(r)::value > 0)
        if (rem == r) gw_taps_generic<T, decltype(r)::value>(grow, xrow, OW, s, d, full, gw + full * L);
    });
  }
}

// ---------------------------------------------------------------- items

struct Item {
  int64_t c0, lanes, n, o0, o1;  // channel block start and width, image, band [o0, o1)
};

Item item_of(const DwPlan& plan, int64_t C, int64_t rows, int64_t it) {
  Item r;
  const int64_t band = it % plan.bands;
  const int64_t rest = it / plan.bands;
  r.n = rest % plan.batch;
  r.c0 = rest / plan.batch * plan.lanes;
  r.lanes = std::min<int64_t>(plan.lanes, C - r.c0);
  r.o0 = band * plan.band_len;
  r.o1 = std::min<int64_t>(rows, r.o0 + plan.band_len);
  return r;
}

// Runs `fn(item, tile, q0)` for every item in [begin, end) after packing its
// source band into the tile.
template <typename S, typename T, typename Fn>
void for_each_band(const DepthwiseParams& p, const DwPlan& plan, const Job& j, const DwView& src,
                   int64_t begin, int64_t end, std::vector<T>& tile, TileShape& ts, Fn&& fn) {
  const int ab = band_axis(p);
  ts = tile_shape(j, ab, plan.band_len);
  tile.resize(ts.size() * kLanes<T>);
  for (int64_t it = begin; it < end; ++it) {
    const Item item = item_of(plan, p.channels, j.out[ab], it);
    TileShape band = ts;
    band.n[ab] = (item.o1 - item.o0 - 1) * j.s[ab] + (j.k[ab] - 1) * j.d[ab] + 1;
    int64_t q0[2] = {0, 0};
    q0[ab] = item.o0 * j.s[ab];
    pack_tile<S, T>(j, src, item.n, item.c0, static_cast<int>(item.lanes), q0, band, tile.data());
    fn(item, band);
  }
}

// Forward-shaped job: dst = conv(src, w) (+ bias).
template <typename S>
void run_forward_job(const DepthwiseParams& p, const DwPlan& plan, const Job& j, const DwView& src,
                     const void* wv, const void* bv, const DwView& dst, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  constexpr int L = kLanes<T>;
  const T* w = static_cast<const T*>(wv);
  const T* bias = static_cast<const T*>(bv);
  const int ab = band_axis(p);
  const int64_t KD = j.k[0], KH = j.k[1], KW = j.k[2];
  std::vector<T> tile, wt(KD * KH * KW * L), out((j.out[2] + kMaxP * j.d[2] + 1) * L);
  std::vector<const T*> rows(KD * KH);
  TileShape ts;
  int64_t packed_c0 = -1;
  vec_t<T> bias_v{};
  for_each_band<S, T>(p, plan, j, src, begin, end, tile, ts, [&](const Item& item, const TileShape& band) {
    if (item.c0 != packed_c0) {
      pack_weights<T>(j, p.channels, w, item.c0, wt.data());
      T b[L] = {};
      for (int l = 0; l < item.lanes && bias; ++l) b[l] = bias[item.c0 + l];
      std::memcpy(&bias_v, b, sizeof(b));
      packed_c0 = item.c0;
    }
    const int64_t rowlen = band.n[2] * L;
    S* dbase = static_cast<S*>(dst.data) + item.n * dst.stride[0] + item.c0 * dst.stride[1];
    const int64_t z0 = ab == 0 ? item.o0 : 0, z1 = ab == 0 ? item.o1 : j.out[0];
    const int64_t y0 = ab == 1 ? item.o0 : 0, y1 = ab == 1 ? item.o1 : j.out[1];
    for (int64_t oz = z0; oz < z1; ++oz)
      for (int64_t oy = y0; oy < y1; ++oy) {
        // tile rows used by output row (oz, oy), relative to the band's origin
        const int64_t tz = oz * j.s[0] - (ab == 0 ? item.o0 * j.s[0] : 0);
        const int64_t ty = oy * j.s[1] - (ab == 1 ? item.o0 * j.s[1] : 0);
        for (int64_t kd = 0; kd < KD; ++kd)
          for (int64_t ky = 0; ky < KH; ++ky)
            rows[kd * KH + ky] = tile.data() + ((tz + kd * j.d[0]) * band.n[1] + ty + ky * j.d[1]) * rowlen;
        fwd_row<T>(j, rows.data(), KD * KH, wt.data(), bias_v, out.data());
        unpack_row<S, T>(out.data(), static_cast<int>(item.lanes), j.out[2],
                         dbase + oz * dst.stride[2] + oy * dst.stride[3], dst.stride[1], dst.stride[4]);
      }
  });
}

template <typename S>
void run_backward_weight(const DepthwiseParams& p, const DwPlan& plan, const DwView& x,
                         const DwView& gy, void* partial, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  constexpr int L = kLanes<T>;
  const Job j = forward_job(p);
  const int ab = band_axis(p);
  const int64_t KD = j.k[0], KH = j.k[1], KW = j.k[2], KV = KD * KH * KW;
  const int64_t OW = j.out[2];
  const int64_t gwidth = OW + kMaxP * j.d[2] + 1;  // zeros past the last output
  std::vector<T> tile, gwt(KV * L), grow(gwidth * L);
  TileShape ts;
  T* gw = static_cast<T*>(partial);
  const S* gbase0 = static_cast<const S*>(gy.data);
  for_each_band<S, T>(p, plan, j, x, begin, end, tile, ts, [&](const Item& item, const TileShape& band) {
    std::fill(gwt.begin(), gwt.end(), T(0));
    const int64_t rowlen = band.n[2] * L;
    const S* gbase = gbase0 + item.n * gy.stride[0] + item.c0 * gy.stride[1];
    const int64_t z0 = ab == 0 ? item.o0 : 0, z1 = ab == 0 ? item.o1 : j.out[0];
    const int64_t y0 = ab == 1 ? item.o0 : 0, y1 = ab == 1 ? item.o1 : j.out[1];
    for (int64_t oz = z0; oz < z1; ++oz)
      for (int64_t oy = y0; oy < y1; ++oy) {
        pack_row<S>(gbase + oz * gy.stride[2] + oy * gy.stride[3], gy.stride[1], gy.stride[4],
                    static_cast<int>(item.lanes), OW, grow.data(), gwidth, 1, 0);
        const int64_t tz = oz * j.s[0] - (ab == 0 ? item.o0 * j.s[0] : 0);
        const int64_t ty = oy * j.s[1] - (ab == 1 ? item.o0 * j.s[1] : 0);
        for (int64_t kd = 0; kd < KD; ++kd)
          for (int64_t ky = 0; ky < KH; ++ky) {
            const T* xrow = tile.data() + ((tz + kd * j.d[0]) * band.n[1] + ty + ky * j.d[1]) * rowlen;
            gw_row<T>(j, grow.data(), xrow, gwt.data() + (kd * KH + ky) * KW * L);
          }
      }
    for (int64_t l = 0; l < item.lanes; ++l) {
      T* dst = gw + (item.c0 + l) * KV;
      for (int64_t t = 0; t < KV; ++t) dst[t] += gwt[t * L + l];
    }
  });
}

template <typename T>
DwPlan make_plan(const DepthwiseParams& p, DwOp op, int threads) {
  DwPlan plan;
  plan.lanes = kLanes<T>;
  plan.channel_blocks = (p.channels + plan.lanes - 1) / plan.lanes;
  plan.batch = p.batch;
  const Job j = op == DwOp::backward_input ? backward_input_job(p) : forward_job(p);
  const int ab = band_axis(p);
  const int64_t rows = j.out[ab];
  // Enough items for every thread, and tiles that stay in the L2 cache.
  const int64_t items = plan.channel_blocks * plan.batch;
  int64_t bands = items >= 4 * threads ? 1 : (4 * threads + items - 1) / items;
  const int64_t tile_bytes = tile_shape(j, ab, rows).size() * plan.lanes * static_cast<int64_t>(sizeof(T));
  constexpr int64_t kTileBudget = 384 * 1024;
  bands = std::max<int64_t>(bands, (tile_bytes + kTileBudget - 1) / kTileBudget);
  bands = std::clamp<int64_t>(bands, 1, std::max<int64_t>(rows, 1));
  plan.band_len = (rows + bands - 1) / bands;
  plan.bands = (rows + plan.band_len - 1) / plan.band_len;
  return plan;
}

}  // namespace

DwPlan depthwise_plan(const DepthwiseParams& p, DwType type, DwOp op, int threads) {
  return type == DwType::f64 ? make_plan<double>(p, op, threads) : make_plan<float>(p, op, threads);
}

void depthwise_forward(const DepthwiseParams& p, const DwPlan& plan, DwType type, DwView x,
                       const void* w, const void* bias, DwView y, int64_t begin, int64_t end) {
  const Job j = forward_job(p);
  switch (type) {
    case DwType::f32: return run_forward_job<float>(p, plan, j, x, w, bias, y, begin, end);
    case DwType::f64: return run_forward_job<double>(p, plan, j, x, w, bias, y, begin, end);
    case DwType::bf16: return run_forward_job<bf16>(p, plan, j, x, w, bias, y, begin, end);
  }
}

void depthwise_backward_input(const DepthwiseParams& p, const DwPlan& plan, DwType type, DwView gy,
                              const void* w, DwView gx, int64_t begin, int64_t end) {
  const Job j = backward_input_job(p);
  switch (type) {
    case DwType::f32: return run_forward_job<float>(p, plan, j, gy, w, nullptr, gx, begin, end);
    case DwType::f64: return run_forward_job<double>(p, plan, j, gy, w, nullptr, gx, begin, end);
    case DwType::bf16: return run_forward_job<bf16>(p, plan, j, gy, w, nullptr, gx, begin, end);
  }
}

void depthwise_backward_weight(const DepthwiseParams& p, const DwPlan& plan, DwType type, DwView x,
                               DwView gy, void* gw_partial, int64_t begin, int64_t end) {
  switch (type) {
    case DwType::f32: return run_backward_weight<float>(p, plan, x, gy, gw_partial, begin, end);
    case DwType::f64: return run_backward_weight<double>(p, plan, x, gy, gw_partial, begin, end);
    case DwType::bf16: return run_backward_weight<bf16>(p, plan, x, gy, gw_partial, begin, end);
  }
}

}  // namespace leanconv::cpu::LEANCONV_ISA
