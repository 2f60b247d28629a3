// The direct path of the CPU depthwise kernels: small kernels on
// channels-innermost (channels_last) tensors, computed straight from the
// source into the destination, one output row of a group of channel blocks
// at a time, no tiles.  Include only from depthwise_direct_<dtype>_kernel.cpp
// (one file per dtype, compiled once per ISA variant).
#pragma once

#include <unistd.h>

#include <cstdlib>

#include "cpu/depthwise_job.h"

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

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
bool direct_ok(const Job& j, const DwView& src, const DwView& dst) {
  const int64_t rows = j.k[0] * j.k[1], taps = rows * j.k[2];
  const bool small = taps <= kDirectMaxTaps || (taps <= kDirectWideMaxTaps && j.out[2] >= kDirectWideMinOutputs);
  const bool tall = j.k[2] <= 5 && rows >= 4 * j.k[2];
  return j.up[0] == 1 && j.up[1] == 1 && j.up[2] == 1 && j.s[2] == 1 && j.d[2] == 1 &&
         src.stride[1] == 1 && dst.stride[1] == 1 && (small || tall);
}

// Outputs from this many bytes on are written with non-temporal stores: the
// last-level cache's size, at least 32 MiB, or $LEANCONV_STREAM_MIN_BYTES.
// Below it the output stays in the cache for whatever reads it next (the next
// layer): streaming outputs of 4 MiB and more (the rule until 2026-12-04) made
// the pair "this kernel, then PyTorch's on the same input" 1.1-1.5x slower and
// this kernel's own calls 1.14-1.3x slower on a 2-core Xeon with a large L3
// (3x3 to 9x9, 8x64x56x56 and 8x128x56x56 channels_last, float32; AMD not
// measured again).
inline int64_t stream_min_bytes() {
  if (const char* env = std::getenv("LEANCONV_STREAM_MIN_BYTES")) return std::max<int64_t>(1, std::atoll(env));
  static const int64_t cache = [] {
    int64_t l3 = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    const long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v > 0) l3 = v;
#endif
    return std::max<int64_t>(int64_t{32} << 20, l3);
  }();
  return cache;
}

// Whether the direct path writes its output with non-temporal stores: for
// outputs of stream_min_bytes() and more, where these small kernels are bound
// by memory traffic, a streaming store saves reading each output line first
// and the output would not stay in the cache anyway; only when every vector
// store is aligned.
template <typename T>
bool stream_output(const ConvGeometry& p, const Job& j, const DwView& dst) {
  constexpr int L = kLanes<T>;
  const int64_t bytes = p.batch * p.channels * j.out[0] * j.out[1] * j.out[2] * int64_t{sizeof(T)};
  const bool aligned = reinterpret_cast<uintptr_t>(dst.data) % (L * sizeof(T)) == 0 &&
                       dst.stride[0] % L == 0 && dst.stride[2] % L == 0 && dst.stride[3] % L == 0 &&
                       dst.stride[4] % L == 0;
  return aligned && bytes >= stream_min_bytes();
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

}  // namespace

template <typename T>
bool depthwise_direct_job(const ConvGeometry& p, const DwPlan& plan, DwOp op, const DwView& src, const T* w,
                          const T* bias, const DwView& dst, int64_t begin, int64_t end) {
  const Job j = job_of(p, op);
  if (!direct_ok<T>(j, src, dst)) return false;
  run_direct_job<T>(p, plan, j, src, w, bias, dst, begin, end);
  return true;
}

}  // namespace leanconv::cpu::LEANCONV_ISA

#define LEANCONV_DEPTHWISE_DIRECT_INSTANTIATE(T)                                                       \
  namespace leanconv::cpu::LEANCONV_ISA {                                                              \
  template bool depthwise_direct_job<T>(const ConvGeometry&, const DwPlan&, DwOp, const DwView&, const T*, \
                                        const T*, const DwView&, int64_t, int64_t);                    \
  }
