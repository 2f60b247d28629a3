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
// (depthwise_direct.h): there the traffic to memory, not the arithmetic,
// decides; so do 3x3, 5x5 and 7x7 on NCHW tensors, plane by plane with
// vectors along W (depthwise_planar.h), where the tiles would transpose.
// grad_input with stride > 1 also multiplies the zeros between the strided
// rows (the product of the strides times the arithmetic): simple, vectorized.
//
// The files: depthwise_job.h holds what every path shares (the Job, the
// tiles, the forward micro-kernels, the items); this file the tiled paths,
// grad_weight, the plans and the entry points; the direct and planar paths
// have a source file per dtype (depthwise_{direct,planar}_{f32,f64}_kernel.cpp),
// so that the build compiles the variants in parallel (as one file, one ISA
// variant took 160 s to compile on one core; split, the longest piece
// takes a fraction of that).
#include "cpu/depthwise_kernel.h"

#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/depthwise_job.h"

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

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
  // weights and output rows: each written before it is read (not cleared)
  Scratch<T, 1> wt_memory;
  Scratch<T, 2> out_memory;
  T* const wt = wt_memory.get(G * KV * L);
  T* const out = out_memory.get(G * outlen);
  std::vector<int64_t> offs(KR), taps(KR);
  std::vector<const T*> rows(KR), wrows(KR);
  std::vector<vec_t<T>> bias_v(G);
  Tiles<T> tiles;
  tiles.zero_to = fwd_read_extent(j);
  int64_t packed_c0 = -1;
  const bool in_place = std::is_same_v<S, T> && dst.stride[1] == 1 && j.s[2] == 1;
  for_each_band<S, T>(p, plan, j, src, begin, end, tiles, [&](const Item& item, const TileShape& band) {
    if (item.c0 != packed_c0) {
      for (int g = 0; g < item.grp.G; ++g) {
        const int64_t c = item.c0 + g * L;
        pack_weights<T>(j, p.channels, w, c, wt + g * KV * L);
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
          wrows[t] = wt + (g * KV + taps[t] * j.k[2]) * L;
        }
        if (g < inplace) {
          if constexpr (std::is_same_v<S, T>)
            fwd_row<T>(j, rows.data(), wrows.data(), nrows, bias_v[g], drow + g * L, dst.stride[4], true);
        } else {
          fwd_row<T>(j, rows.data(), wrows.data(), nrows, bias_v[g], out + g * outlen);
        }
      }
      if (rest.G > 0)
        unpack_row<S, T>(out + inplace * outlen, outlen, rest, j.out[2], drow + inplace * L * dst.stride[1],
                         dst.stride[1], dst.stride[4]);
    });
  });
}

template <typename S>
void run_job(const ConvGeometry& p, const DwPlan& plan, DwOp op, const DwView& src, const void* w,
             const void* bias, const DwView& dst, int64_t begin, int64_t end) {
  using T = typename compute_of<S>::type;
  if constexpr (std::is_same_v<S, T>) {
    const T* wt = static_cast<const T*>(w);
    const T* bt = static_cast<const T*>(bias);
    if (depthwise_direct_job<T>(p, plan, op, src, wt, bt, dst, begin, end)) return;
    if (depthwise_planar_job<T>(p, plan, op, src, wt, bt, dst, begin, end)) return;
  }
  run_forward_job<S>(p, plan, job_of(p, op), src, w, bias, dst, begin, end);
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
  const Job j = job_of(p, op);
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
  run_job<S>(p, plan, DwOp::forward, x, w, bias, y, begin, end);
}

template <typename S>
void depthwise_backward_input(const ConvGeometry& p, const DwPlan& plan, DwView gy, const void* w,
                              DwView gx, int64_t begin, int64_t end) {
  run_job<S>(p, plan, DwOp::backward_input, gy, w, nullptr, gx, begin, end);
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
