// CPU kernels of the one-way filter chain.  Compiled once per ISA variant
// into namespace leanconv::cpu::<LEANCONV_ISA> (see CMakeLists.txt).
//
// Per plane (n, c) and per input slice: the W filter turns a block of input
// rows into a block of W-filtered rows in scratch (a few KiB, stays in L1),
// the H filter combines them into output rows; in 3-D each finished slice is
// added into the output slices its D taps feed.  The backward pass walks the
// same blocks and computes every gradient of the plane from data in cache.
#include "cpu/one_way_kernel.h"

#include <algorithm>
#include <cstring>

#include "cpu/simd.h"

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

using simd::loadu;
using simd::splat;
using simd::storeu;
using simd::vec_t;

// dst[i] (+)= sum_k c[k] * src[k][i] for i < n, K <= 8.  K == 0 writes zeros
// (or leaves dst as it is when accumulating).
template <typename T>
void combine_ptrs(const T* const* src, const T* c, int K, T* dst, int64_t n, bool acc) {
  constexpr int L = simd::Vec<T>::lanes;
  using V = vec_t<T>;
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    V a0 = acc ? loadu(dst + i) : V{};
    V a1 = acc ? loadu(dst + i + L) : V{};
    for (int k = 0; k < K; ++k) {
      const V cv = splat<T>(c[k]);
      a0 += cv * loadu(src[k] + i);
      a1 += cv * loadu(src[k] + i + L);
    }
    storeu(dst + i, a0);
    storeu(dst + i + L, a1);
  }
  for (; i + L <= n; i += L) {
    V a0 = acc ? loadu(dst + i) : V{};
    for (int k = 0; k < K; ++k) a0 += splat<T>(c[k]) * loadu(src[k] + i);
    storeu(dst + i, a0);
  }
  for (; i < n; ++i) {
    T a = acc ? dst[i] : T(0);
    for (int k = 0; k < K; ++k) a += c[k] * src[k][i];
    dst[i] = a;
  }
}

// Collects (row, coefficient) taps and combines them into dst, 8 at a time.
template <typename T>
struct RowCombiner {
  T* dst;
  int64_t n;
  bool acc;
  const T* src[8];
  T c[8];
  int k = 0;
  int64_t taps = 0;

  RowCombiner(T* d, int64_t len, bool accumulate) : dst(d), n(len), acc(accumulate) {}
  void add(const T* s, T coef) {
    if (k == 8) flush();
    src[k] = s;
    c[k++] = coef;
    ++taps;
  }
  void flush() {
    combine_ptrs<T>(src, c, k, dst, n, acc);
    acc = true;
    k = 0;
  }
  // Writes the result; with no taps and no accumulation, dst becomes zero.
  void finish() {
    if (k > 0 || !acc) flush();
  }
};

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  constexpr int L = simd::Vec<T>::lanes;
  using V = vec_t<T>;
  V s0{}, s1{};
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    s0 += loadu(a + i) * loadu(b + i);
    s1 += loadu(a + i + L) * loadu(b + i + L);
  }
  for (; i + L <= n; i += L) s0 += loadu(a + i) * loadu(b + i);
  T s = simd::hsum<T>(s0 + s1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// sum_i a[i] * b[i * stride]
template <typename T>
T dot_strided(const T* a, const T* b, int64_t stride, int64_t n) {
  if (stride == 1) return dot(a, b, n);
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i * stride];
  return s;
}

// dst[i] = sum_k f[k] * src[i * stride + k * dil] for i < n.
template <typename T>
void conv_row(const T* src, const T* f, int64_t K, int64_t dil, int64_t stride, T* dst, int64_t n) {
  constexpr int L = simd::Vec<T>::lanes;
  using V = vec_t<T>;
  int64_t i = 0;
  if (stride == 1) {
    for (; i + 2 * L <= n; i += 2 * L) {
      V a0{}, a1{};
      for (int64_t k = 0; k < K; ++k) {
        const V fv = splat<T>(f[k]);
        a0 += fv * loadu(src + i + k * dil);
        a1 += fv * loadu(src + i + L + k * dil);
      }
      storeu(dst + i, a0);
      storeu(dst + i + L, a1);
    }
    for (; i + L <= n; i += L) {
      V a0{};
      for (int64_t k = 0; k < K; ++k) a0 += splat<T>(f[k]) * loadu(src + i + k * dil);
      storeu(dst + i, a0);
    }
  }
  for (; i < n; ++i) {
    T a = 0;
    for (int64_t k = 0; k < K; ++k) a += f[k] * src[i * stride + k * dil];
    dst[i] = a;
  }
}

// dst[j] = src[j - pad] where 0 <= j - pad < w, else 0, for j < ext.
template <typename T>
void pad_row(const T* src, int64_t w, int64_t pad, T* dst, int64_t ext) {
  const int64_t j0 = std::clamp<int64_t>(pad, 0, ext);
  const int64_t j1 = std::clamp<int64_t>(pad + w, j0, ext);
  std::fill(dst, dst + j0, T(0));
  if (j1 > j0) std::memcpy(dst + j0, src + (j0 - pad), (j1 - j0) * sizeof(T));
  std::fill(dst + j1, dst + ext, T(0));
}

// What the kernels add to the geometry of one call (read by every helper
// below): the row blocking and scratch layout, the H filter's halo, and short
// int64 names for the H and W sizes of the geometry that the arithmetic reads.
struct OneWayCpuTiling {
  const ConvGeometry& p;
  const OneWayScratch s;
  int64_t H, W, oh, ow, kh, kw, sy, sx, dy, dx, pad_h, pad_w, halo;
  explicit OneWayCpuTiling(const ConvGeometry& q, bool backward)
      : p(q), s(one_way_scratch(q, backward)), H(q.in[1]), W(q.in[2]), oh(q.out[1]),
        ow(q.out[2]), kh(q.kernel[1]), kw(q.kernel[2]), sy(q.stride[1]), sx(q.stride[2]),
        dy(q.dilation[1]), dx(q.dilation[2]), pad_h(q.pad[1]), pad_w(q.pad[2]),
        halo((q.kernel[1] - 1) * q.dilation[1] + 1) {}
  // padded rows [r0, r1) that the output rows [oy0, oy1) read
  int64_t row_lo(int64_t oy0) const { return oy0 * sy; }
  int64_t row_hi(int64_t oy1) const { return (oy1 - 1) * sy + halo; }
};

// ---- stride-1 fast path: a block of padded rows is one flat array of rows of
// ext_w columns (the first ow hold results, the others are a gap), so every
// pass is one long vector loop instead of one short loop per row.

// The padded input rows [r0, r1) of a slice, ext_w columns each (zero outside).
template <typename T>
void copy_rows_padded(const OneWayCpuTiling& g, const T* src, int64_t r0, int64_t r1, T* xp) {
  const int64_t wp = g.s.ext_w;
  for (int64_t r = r0; r < r1; ++r) {
    T* dst = xp + (r - r0) * wp;
    const int64_t yi = r - g.pad_h;
    if (yi < 0 || yi >= g.H) std::fill(dst, dst + wp, T(0));
    else pad_row(src + yi * g.W, g.W, g.pad_w, dst, wp);
  }
}

// dst rows (stride dst_ld, n columns) = sum_k c[k] * rows of src at k * step.
template <typename T>
void combine_rows(const T* src, int64_t src_ld, int64_t step, const T* c, int64_t K, T* dst,
                  int64_t dst_ld, int64_t nrows, int64_t n) {
  const T* taps[8];
  for (int64_t row = 0; row < nrows; ++row) {
    const T* base = src + row * src_ld;
    T* out = dst + row * dst_ld;
    for (int64_t k0 = 0; k0 < K; k0 += 8) {
      const int kk = static_cast<int>(std::min<int64_t>(8, K - k0));
      for (int k = 0; k < kk; ++k) taps[k] = base + (k0 + k) * step;
      combine_ptrs<T>(taps, c + k0, kk, out, n, k0 > 0);
    }
  }
}

// Flat combination: dst[i] = sum_k c[k] * src[i + k * step] for i < n.
template <typename T>
void combine_flat(const T* src, int64_t step, const T* c, int64_t K, T* dst, int64_t n) {
  combine_rows(src, 0, step, c, K, dst, 0, 1, n);
}

template <typename T>
void forward_slice_flat(const OneWayCpuTiling& g, const T* src, const T* ch, const T* fw, T* out,
                        T* scratch) {
  const int64_t wp = g.s.ext_w;
  T* xp = scratch + g.s.xp;
  T* t1 = scratch + g.s.t1;
  for (int64_t oy0 = 0; oy0 < g.oh; oy0 += g.s.block_rows) {
    const int64_t oy1 = std::min(g.oh, oy0 + g.s.block_rows);
    const int64_t r0 = oy0, r1 = oy1 - 1 + g.halo;
    copy_rows_padded(g, src, r0, r1, xp);
    // W filter over all rows at once; the last (kW-1)*dx entries are gap, not computed
    conv_row(xp, fw, g.kw, g.dx, int64_t(1), t1, (r1 - r0) * wp - (g.kw - 1) * g.dx);
    combine_rows(t1, wp, g.dy * wp, ch, g.kh, out + oy0 * g.ow, g.ow, oy1 - oy0, g.ow);
  }
}

template <typename T>
void backward_slice_flat(const OneWayCpuTiling& g, const T* src, const T* gout, const T* ch,
                         const T* fw, T* gx, T* gh, T* gw, T* scratch) {
  const int64_t wp = g.s.ext_w, P = g.halo - 1, gap = (g.kw - 1) * g.dx;
  T* xp = scratch + g.s.xp;
  T* t1 = scratch + g.s.t1;
  T* gp = scratch + g.s.gp;          // grad_output rows of the block, P zero rows around
  T* gyp = scratch + g.s.gyf;        // gap zeros, then gY rows
  T* gy = gyp + gap;
  T* gxp = scratch + g.s.gxp;
  T* rev = scratch + g.s.coef + 2 * g.kh + g.p.kernel[0];  // reversed taps
  for (int64_t oy0 = 0; oy0 < g.oh; oy0 += g.s.block_rows) {
    const int64_t oy1 = std::min(g.oh, oy0 + g.s.block_rows), nb = oy1 - oy0;
    const int64_t r0 = oy0, r1 = oy1 - 1 + g.halo, n = (r1 - r0) * wp;
    copy_rows_padded(g, src, r0, r1, xp);
    std::fill(gp, gp + P * wp, T(0));
    for (int64_t i = 0; i < nb; ++i) {
      T* row = gp + (P + i) * wp;
      std::memcpy(row, gout + (oy0 + i) * g.ow, g.ow * sizeof(T));
      std::fill(row + g.ow, row + wp, T(0));
    }
    std::fill(gp + (P + nb) * wp, gp + (2 * P + nb) * wp, T(0));
    if (gh) {  // gh[ky] += <g, W(x) shifted by ky*dy rows>
      conv_row(xp, fw, g.kw, g.dx, int64_t(1), t1, n - gap);
      for (int64_t ky = 0; ky < g.kh; ++ky) gh[ky] += dot(gp + P * wp, t1 + ky * g.dy * wp, nb * wp - gap);
    }
    if (!gw && !gx) continue;
    // gY[r] = sum_ky ch[ky] g[r - ky*dy]: taps at rows P - ky*dy of gp, i.e. reversed order
    for (int64_t k = 0; k < g.kh; ++k) rev[k] = ch[g.kh - 1 - k];
    std::fill(gyp, gy, T(0));
    combine_flat(gp, g.dy * wp, rev, g.kh, gy, n);
    if (gw)
      for (int64_t kx = 0; kx < g.kw; ++kx) gw[kx] += dot(gy, xp + kx * g.dx, n - gap);
    if (gx) {
      // gxp[i] = sum_kx fw[kx] gY[i - kx*dx]: reversed W taps over gyp
      for (int64_t k = 0; k < g.kw; ++k) rev[k] = fw[g.kw - 1 - k];
      conv_row(gyp, rev, g.kw, g.dx, int64_t(1), gxp, n);
      const int64_t x0 = std::max<int64_t>(0, -g.pad_w), x1 = std::min<int64_t>(g.W, wp - g.pad_w);
      for (int64_t r = std::max(r0, g.pad_h); r < std::min(r1, g.pad_h + g.H); ++r) {
        T* dst = gx + (r - g.pad_h) * g.W;
        const T* srow = gxp + (r - r0) * wp + g.pad_w;
        for (int64_t xi = x0; xi < x1; ++xi) dst[xi] += srow[xi];
      }
    }
  }
}

// out (oh x ow) = H(ch) o W(fw) of one input slice (H x W).
template <typename T>
void forward_slice(const OneWayCpuTiling& g, const T* src, const T* ch, const T* fw, T* out,
                   T* scratch) {
  if (g.s.flat) return forward_slice_flat(g, src, ch, fw, out, scratch);
  T* xrow = scratch + g.s.xrow;
  T* t1 = scratch + g.s.t1;
  for (int64_t oy0 = 0; oy0 < g.oh; oy0 += g.s.block_rows) {
    const int64_t oy1 = std::min(g.oh, oy0 + g.s.block_rows);
    const int64_t r0 = g.row_lo(oy0);
    // only rows inside the input: padding rows contribute nothing
    const int64_t ra = std::max(r0, g.pad_h), rb = std::min(g.row_hi(oy1), g.pad_h + g.H);
    for (int64_t r = ra; r < rb; ++r) {
      pad_row(src + (r - g.pad_h) * g.W, g.W, g.pad_w, xrow, g.s.ext_w);
      conv_row(xrow, fw, g.kw, g.dx, g.sx, t1 + (r - r0) * g.ow, g.ow);
    }
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      RowCombiner<T> rc(out + oy * g.ow, g.ow, false);
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t r = oy * g.sy + ky * g.dy;
        if (r >= ra && r < rb) rc.add(t1 + (r - r0) * g.ow, ch[ky]);
      }
      rc.finish();
    }
  }
}

// Backward of one slice, given g (oh x ow) = the gradient w.r.t. the slice's
// H-filter output H(ch) o W(fw) (src).  Adds, for whichever pointer is set:
//   gh[ky] += sum g[oy][ox] * W(src)[oy*sy + ky*dy][ox]   (padded rows)
//   gw[kx] += sum gY[r][ox] * src_padded[r][ox*sx + kx*dx],  gY = H^T(ch) g
//   gx     += W^T(fw) gY, cropped to the slice
template <typename T>
void backward_slice(const OneWayCpuTiling& g, const T* src, const T* gout, const T* ch,
                    const T* fw, T* gx, T* gh, T* gw, T* scratch) {
  if (g.s.flat) return backward_slice_flat(g, src, gout, ch, fw, gx, gh, gw, scratch);
  T* xrow = scratch + g.s.xrow;
  T* t1 = scratch + g.s.t1;
  const int64_t gpad = (g.kw - 1) * g.dx;
  T* grow = scratch + g.s.grow;  // gY row with gpad zeros on both sides
  T* gyrow = grow + gpad;
  T* gxrow = scratch + g.s.gxrow;
  T* fw_flip = scratch + g.s.coef + 2 * g.kh + g.p.kernel[0];  // after ch and loc
  for (int64_t k = 0; k < g.kw; ++k) fw_flip[k] = fw[g.kw - 1 - k];
  std::fill(grow, grow + gpad, T(0));
  std::fill(gyrow + g.ow, gyrow + g.ow + gpad, T(0));
  for (int64_t oy0 = 0; oy0 < g.oh; oy0 += g.s.block_rows) {
    const int64_t oy1 = std::min(g.oh, oy0 + g.s.block_rows);
    const int64_t r0 = g.row_lo(oy0);
    const int64_t ra = std::max(r0, g.pad_h), rb = std::min(g.row_hi(oy1), g.pad_h + g.H);
    if (gh) {
      for (int64_t r = ra; r < rb; ++r) {
        pad_row(src + (r - g.pad_h) * g.W, g.W, g.pad_w, xrow, g.s.ext_w);
        conv_row(xrow, fw, g.kw, g.dx, g.sx, t1 + (r - r0) * g.ow, g.ow);
      }
      for (int64_t oy = oy0; oy < oy1; ++oy)
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const int64_t r = oy * g.sy + ky * g.dy;
          if (r >= ra && r < rb) gh[ky] += dot(gout + oy * g.ow, t1 + (r - r0) * g.ow, g.ow);
        }
    }
    if (!gw && !gx) continue;
    for (int64_t r = ra; r < rb; ++r) {
      // gY row r: the part that the outputs of this block send back
      RowCombiner<T> rc(gyrow, g.ow, false);
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const int64_t q = r - ky * g.dy;
        if (q < 0 || q % g.sy != 0) continue;
        const int64_t oy = q / g.sy;
        if (oy >= oy0 && oy < oy1) rc.add(gout + oy * g.ow, ch[ky]);
      }
      if (rc.taps == 0) continue;
      rc.finish();
      const int64_t yi = r - g.pad_h;
      if (gw) {
        pad_row(src + yi * g.W, g.W, g.pad_w, xrow, g.s.ext_w);
        for (int64_t kx = 0; kx < g.kw; ++kx)
          gw[kx] += dot_strided(gyrow, xrow + kx * g.dx, g.sx, g.ow);
      }
      if (gx) {
        if (g.sx == 1) {
          conv_row(grow, fw_flip, g.kw, g.dx, int64_t(1), gxrow, g.s.ext_w);
        } else {
          std::fill(gxrow, gxrow + g.s.ext_w, T(0));
          for (int64_t ox = 0; ox < g.ow; ++ox)
            for (int64_t kx = 0; kx < g.kw; ++kx) gxrow[ox * g.sx + kx * g.dx] += fw[kx] * gyrow[ox];
        }
        T* dst = gx + yi * g.W;
        const int64_t x0 = std::max<int64_t>(0, -g.pad_w);
        const int64_t x1 = std::min<int64_t>(g.W, g.s.ext_w - g.pad_w);
        for (int64_t xi = x0; xi < x1; ++xi) dst[xi] += gxrow[xi + g.pad_w];
      }
    }
  }
}

// The (output slice, D tap) pairs that padded input slice zp feeds.
struct SlicePairs {
  int64_t n = 0;
  int64_t oz[64], kz[64];
};

void pairs_of(const ConvGeometry& p, int64_t zp, int64_t kz0, int64_t kz1, SlicePairs& out) {
  out.n = 0;
  for (int64_t kz = kz0; kz < kz1; ++kz) {
    const int64_t q = zp - kz * p.dilation[0];
    if (q < 0 || q % p.stride[0] != 0 || q / p.stride[0] >= p.out[0]) continue;
    out.oz[out.n] = q / p.stride[0];
    out.kz[out.n++] = kz;
  }
}

template <typename T>
void forward_plane(const OneWayCpuTiling& g, const T* x, const T* fd, const T* fh, const T* fw,
                   T sc, T* y, T* scratch) {
  const ConvGeometry& p = g.p;
  const int64_t in_slice = g.H * g.W, out_slice = g.oh * g.ow, KD = p.kernel[0];
  T* ch = scratch + g.s.coef;
  if (KD == 1) {
    // each output slice reads one input slice: the scale goes into the H taps
    const T c0 = sc * (fd ? fd[0] : T(1));
    for (int64_t k = 0; k < g.kh; ++k) ch[k] = c0 * fh[k];
    for (int64_t oz = 0; oz < p.out[0]; ++oz) {
      const int64_t zi = oz * p.stride[0] - p.pad[0];
      T* out = y + oz * out_slice;
      if (zi < 0 || zi >= p.in[0]) std::fill(out, out + out_slice, T(0));
      else forward_slice(g, x + zi * in_slice, ch, fw, out, scratch);
    }
    return;
  }
  std::fill(y, y + p.out[0] * out_slice, T(0));
  T* t2 = scratch + g.s.slice;
  SlicePairs pairs;
  const int64_t ext_d = (p.out[0] - 1) * p.stride[0] + (KD - 1) * p.dilation[0] + 1;
  for (int64_t zp = std::max<int64_t>(0, p.pad[0]); zp < std::min(ext_d, p.pad[0] + p.in[0]); ++zp) {
    bool computed = false;
    for (int64_t kz0 = 0; kz0 < KD; kz0 += 64) {
      pairs_of(p, zp, kz0, std::min<int64_t>(KD, kz0 + 64), pairs);
      if (pairs.n == 0) continue;
      if (!computed) forward_slice(g, x + (zp - p.pad[0]) * in_slice, fh, fw, t2, scratch);
      computed = true;
      for (int64_t i = 0; i < pairs.n; ++i) {
        const T c = sc * fd[pairs.kz[i]];
        const T* src[1] = {t2};
        combine_ptrs<T>(src, &c, 1, y + pairs.oz[i] * out_slice, out_slice, true);
      }
    }
  }
}

template <typename T>
void backward_plane(const OneWayCpuTiling& g, const T* gy, const T* x, const T* fd, const T* fh,
                    const T* fw, T sc, T* gx, T* gf, T* scratch) {
  const ConvGeometry& p = g.p;
  const int64_t in_slice = g.H * g.W, out_slice = g.oh * g.ow, KD = p.kernel[0];
  T* gfd = gf;
  T* gfh = gf ? gf + KD : nullptr;
  T* gfw = gf ? gfh + g.kh : nullptr;
  T* gsc = gf ? gfw + g.kw : nullptr;
  if (gx) std::fill(gx, gx + p.in[0] * in_slice, T(0));
  T* ch = scratch + g.s.coef;
  T* loc = ch + g.kh;  // kH accumulators (KD == 1) or KD of them (3-D); see one_way_scratch
  if (KD == 1) {
    const T d0 = fd ? fd[0] : T(1), c0 = sc * d0;
    for (int64_t k = 0; k < g.kh; ++k) {
      ch[k] = c0 * fh[k];
      loc[k] = 0;
    }
    for (int64_t oz = 0; oz < p.out[0]; ++oz) {
      const int64_t zi = oz * p.stride[0] - p.pad[0];
      if (zi < 0 || zi >= p.in[0]) continue;
      backward_slice(g, x + zi * in_slice, gy + oz * out_slice, ch, fw,
                     gx ? gx + zi * in_slice : nullptr, gf ? loc : nullptr, gfw, scratch);
    }
    if (gf) {
      // loc[ky] = sum gy * W(x) shifted by ky; the unscaled chain output is
      // sum_ky fh[ky] * that, whose dot with gy is G below.
      T G = 0;
      for (int64_t k = 0; k < g.kh; ++k) {
        gfh[k] += c0 * loc[k];
        G += fh[k] * loc[k];
      }
      if (fd) gfd[0] += sc * G;
      *gsc += d0 * G;
    }
    return;
  }
  // 3-D: loc[kz] = sum gy[oz] * (H o W)(x)[oz*sz + kz*dz]
  for (int64_t k = 0; k < KD; ++k) loc[k] = 0;
  T* t2 = scratch + g.s.slice;
  T* gz = scratch + g.s.gslice;
  SlicePairs pairs;
  const int64_t ext_d = (p.out[0] - 1) * p.stride[0] + (KD - 1) * p.dilation[0] + 1;
  for (int64_t zp = std::max<int64_t>(0, p.pad[0]); zp < std::min(ext_d, p.pad[0] + p.in[0]); ++zp) {
    const T* src = x + (zp - p.pad[0]) * in_slice;
    bool any = false, computed = false;
    for (int64_t kz0 = 0; kz0 < KD; kz0 += 64) {
      pairs_of(p, zp, kz0, std::min<int64_t>(KD, kz0 + 64), pairs);
      if (pairs.n == 0) continue;
      if (gf && !computed) forward_slice(g, src, fh, fw, t2, scratch);
      computed = true;
      // gz = sum over pairs sc * fd[kz] * gy[oz]: the gradient w.r.t. this slice's H output
      RowCombiner<T> rc(gz, out_slice, any);
      for (int64_t i = 0; i < pairs.n; ++i) {
        const T* go = gy + pairs.oz[i] * out_slice;
        if (gf) loc[pairs.kz[i]] += dot(go, t2, out_slice);
        rc.add(go, sc * fd[pairs.kz[i]]);
      }
      rc.finish();
      any = true;
    }
    if (!any) continue;
    backward_slice(g, src, gz, fh, fw, gx ? gx + (zp - p.pad[0]) * in_slice : nullptr, gfh, gfw,
                   scratch);
  }
  if (gf) {
    T G = 0;
    for (int64_t k = 0; k < KD; ++k) {
      gfd[k] += sc * loc[k];
      G += fd[k] * loc[k];
    }
    *gsc += G;
  }
}

template <typename T>
void forward_planar(const ConvGeometry& p, const T* x, const T* fd, const T* fh, const T* fw,
                    const T* scale, T* y, T* scratch, int64_t begin, int64_t end) {
  const OneWayCpuTiling g(p, false);
  const int64_t C = p.channels;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t c = plane % C;
    forward_plane<T>(g, x + plane * p.in_plane(), fd ? fd + c * p.kernel[0] : nullptr,
                     fh + c * g.kh, fw + c * g.kw, scale ? scale[c] : T(1),
                     y + plane * p.out_plane(), scratch);
  }
}

template <typename T>
void backward_planar(const ConvGeometry& p, const T* gy, const T* x, const T* fd, const T* fh,
                     const T* fw, const T* scale, T* gx, T* gf, T* scratch, int64_t begin,
                     int64_t end) {
  const OneWayCpuTiling g(p, true);
  const int64_t C = p.channels, row = p.kernel[0] + g.kh + g.kw + 1;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t c = plane % C;
    backward_plane<T>(g, gy + plane * p.out_plane(), x + plane * p.in_plane(),
                      fd ? fd + c * p.kernel[0] : nullptr, fh + c * g.kh, fw + c * g.kw,
                      scale ? scale[c] : T(1), gx ? gx + plane * p.in_plane() : nullptr,
                      gf ? gf + c * row : nullptr, scratch);
  }
}

}  // namespace

#define LEANCONV_DEFINE(T)                                                                    \
  void one_way_forward_planar(const ConvGeometry& p, const T* x, const T* fd, const T* fh, \
                              const T* fw, const T* scale, T* y, T* scratch, int64_t begin,   \
                              int64_t end) {                                                  \
    forward_planar<T>(p, x, fd, fh, fw, scale, y, scratch, begin, end);                       \
  }                                                                                           \
  void one_way_backward_planar(const ConvGeometry& p, const T* gy, const T* x, const T* fd, \
                               const T* fh, const T* fw, const T* scale, T* gx, T* gf,        \
                               T* scratch, int64_t begin, int64_t end) {                      \
    backward_planar<T>(p, gy, x, fd, fh, fw, scale, gx, gf, scratch, begin, end);             \
  }

LEANCONV_DEFINE(float)
LEANCONV_DEFINE(double)

}  // namespace leanconv::cpu::LEANCONV_ISA
