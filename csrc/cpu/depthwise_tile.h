// Moving rows of a strided tensor into and out of channel-block tiles (one
// vector of `lanes` channels per pixel), with dtype conversion on the way.
// Include only from *_kernel.cpp files (compiled once per ISA).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/depthwise_kernel.h"
#include "cpu/simd.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace leanconv::cpu::LEANCONV_ISA {

using ::leanconv::cpu::bf16;  // bfloat16 storage (cpu/depthwise_kernel.h)

template <typename S>
struct compute_of {
  using type = S;
};
template <>
struct compute_of<bf16> {
  using type = float;
};

template <typename T>
inline constexpr int kLanes = simd::Vec<T>::lanes;

// ---------------------------------------------------------------- conversions

// Integer vectors as wide as one float vector, for bfloat16 bit manipulation.
typedef uint16_t bf16_vec_t __attribute__((vector_size(kLanes<float> * 2)));
typedef uint32_t u32_vec_t __attribute__((vector_size(kLanes<float> * 4)));
typedef int32_t i32_vec_t __attribute__((vector_size(kLanes<float> * 4)));

template <typename T>
inline T to_compute(T v) { return v; }
inline float to_compute(bf16 v) {
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename S, typename T>
inline S from_compute(T v) { return static_cast<S>(v); }
// Round to nearest even; NaN stays a (quiet) NaN.
template <>
inline bf16 from_compute<bf16, float>(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (f != f) return bf16{static_cast<uint16_t>((u >> 16) | 0x40)};
  u += 0x7FFFu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// L contiguous elements of storage type S as a compute vector.
template <typename S, typename T = typename compute_of<S>::type>
inline simd::vec_t<T> load_cvt(const S* p) {
  if constexpr (std::is_same_v<S, T>) {
    return simd::loadu(p);
  } else {
    static_assert(std::is_same_v<T, float>, "bfloat16 computes in float");
    bf16_vec_t h;
    std::memcpy(&h, p, sizeof(h));
    const u32_vec_t u = __builtin_convertvector(h, u32_vec_t) << 16;
    simd::vec_t<T> v;
    std::memcpy(&v, &u, sizeof(v));
    return v;
  }
}

template <typename S, typename T>
inline void store_cvt(S* p, simd::vec_t<T> v) {
  if constexpr (std::is_same_v<S, T>) {
    simd::storeu(p, v);
  } else {
    static_assert(std::is_same_v<T, float>, "bfloat16 computes in float");
    u32_vec_t u;
    std::memcpy(&u, &v, sizeof(u));
    const u32_vec_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const u32_vec_t quiet = (u >> 16) | 0x40u;
    const i32_vec_t nan = v != v;  // all ones where NaN
    const u32_vec_t r = nan ? quiet : rounded;
    const bf16_vec_t h = __builtin_convertvector(r, bf16_vec_t);
    std::memcpy(p, &h, sizeof(h));
  }
}

// ---------------------------------------------------------------- transposes

#if defined(__AVX2__) || defined(__AVX512F__)
// The first two steps of the float transposes (AVX2 and AVX-512): within each
// 128-bit lane, the 4 x 4 blocks of rows 4i .. 4i+3 (i < n / 4) are transposed,
// so that afterwards a[4i + m] lane q holds column 4q + m of those rows.
template <typename V>
inline void transpose_4x4_in_lanes(V* a, int n) {
  constexpr bool wide = sizeof(V) == 64;
  auto lo = [](V x, V y) {
    if constexpr (wide) return _mm512_unpacklo_ps(x, y); else return _mm256_unpacklo_ps(x, y);
  };
  auto hi = [](V x, V y) {
    if constexpr (wide) return _mm512_unpackhi_ps(x, y); else return _mm256_unpackhi_ps(x, y);
  };
  auto pick01 = [](V x, V y) {
    if constexpr (wide) return _mm512_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0));
    else return _mm256_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0));
  };
  auto pick23 = [](V x, V y) {
    if constexpr (wide) return _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2));
    else return _mm256_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2));
  };
  V u[16];
  for (int i = 0; i < n; i += 2) {
    u[i] = lo(a[i], a[i + 1]);
    u[i + 1] = hi(a[i], a[i + 1]);
  }
  for (int i = 0; i < n; i += 4) {
    a[i] = pick01(u[i], u[i + 2]);
    a[i + 1] = pick23(u[i], u[i + 2]);
    a[i + 2] = pick01(u[i + 1], u[i + 3]);
    a[i + 3] = pick23(u[i + 1], u[i + 3]);
  }
}
#endif

#if defined(__AVX512F__)
// One 128-bit-lane shuffle of two float or double vectors (the immediate is a
// template argument: the intrinsics need a constant).
template <int Imm, typename V>
inline V shuffle_lanes(V a, V b) {
  if constexpr (std::is_same_v<V, __m512>) {
    return _mm512_shuffle_f32x4(a, b, Imm);
  } else {
    return _mm512_shuffle_f64x2(a, b, Imm);
  }
}

// The last step of the AVX-512 transposes: vector c = 4q + m (q: 128-bit lane,
// m < M = L / 4) gathers lane q of u[m], u[M + m], u[2M + m], u[3M + m], where
// u[i] lane q holds column 4q + i % M of rows 4 * (i / M) .. 4 * (i / M) + 3
// (float; for double, rows 2 * (i / M) .. 2 * (i / M) + 1).
template <typename V, int M>
inline void gather_lanes(const V* u, V* out) {
  for (int m = 0; m < M; ++m) {
    const V v1 = shuffle_lanes<0x44>(u[m], u[M + m]), v2 = shuffle_lanes<0xEE>(u[m], u[M + m]);
    const V v3 = shuffle_lanes<0x44>(u[2 * M + m], u[3 * M + m]);
    const V v4 = shuffle_lanes<0xEE>(u[2 * M + m], u[3 * M + m]);
    out[0 * M + m] = shuffle_lanes<0x88>(v1, v3);
    out[1 * M + m] = shuffle_lanes<0xDD>(v1, v3);
    out[2 * M + m] = shuffle_lanes<0x88>(v2, v4);
    out[3 * M + m] = shuffle_lanes<0xDD>(v2, v4);
  }
}
#endif

// r[i] lane j  <-  r[j] lane i  (an L x L block held in L vectors).
template <typename T>
inline void transpose(simd::vec_t<T>* r) {
  constexpr int L = kLanes<T>;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    // 4 x 4 blocks within each 128-bit lane, then the lanes
    __m512 a[16], u[16];
    for (int i = 0; i < 16; ++i) a[i] = (__m512)r[i];
    transpose_4x4_in_lanes(a, 16);
    gather_lanes<__m512, 4>(a, u);
    for (int i = 0; i < 16; ++i) r[i] = (simd::vec_t<T>)u[i];
    return;
  }
  if constexpr (std::is_same_v<T, double>) {
    __m512d a[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      a[i] = _mm512_unpacklo_pd((__m512d)r[i], (__m512d)r[i + 1]);
      a[i + 1] = _mm512_unpackhi_pd((__m512d)r[i], (__m512d)r[i + 1]);
    }
    gather_lanes<__m512d, 2>(a, u);
    for (int i = 0; i < 8; ++i) r[i] = (simd::vec_t<T>)u[i];
    return;
  }
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    __m256 a[8];
    for (int i = 0; i < 8; ++i) a[i] = (__m256)r[i];
    transpose_4x4_in_lanes(a, 8);
    for (int i = 0; i < 4; ++i) {
      r[i] = (simd::vec_t<T>)_mm256_permute2f128_ps(a[i], a[i + 4], 0x20);
      r[i + 4] = (simd::vec_t<T>)_mm256_permute2f128_ps(a[i], a[i + 4], 0x31);
    }
    return;
  }
  if constexpr (std::is_same_v<T, double>) {
    const __m256d a0 = (__m256d)r[0], a1 = (__m256d)r[1], a2 = (__m256d)r[2], a3 = (__m256d)r[3];
    const __m256d b0 = _mm256_unpacklo_pd(a0, a1), b1 = _mm256_unpackhi_pd(a0, a1);
    const __m256d b2 = _mm256_unpacklo_pd(a2, a3), b3 = _mm256_unpackhi_pd(a2, a3);
    r[0] = (simd::vec_t<T>)_mm256_permute2f128_pd(b0, b2, 0x20);
    r[1] = (simd::vec_t<T>)_mm256_permute2f128_pd(b1, b3, 0x20);
    r[2] = (simd::vec_t<T>)_mm256_permute2f128_pd(b0, b2, 0x31);
    r[3] = (simd::vec_t<T>)_mm256_permute2f128_pd(b1, b3, 0x31);
    return;
  }
#endif
  T m[L][L];
  std::memcpy(m, r, sizeof(m));
  for (int i = 0; i < L; ++i)
    for (int j = i + 1; j < L; ++j) std::swap(m[i][j], m[j][i]);
  std::memcpy(r, m, sizeof(m));
}

// ---------------------------------------------------------------- rows

// A group of G channel blocks: channels c0 .. c0 + nch - 1 of the source, block
// g holding channels g*L .. g*L + L - 1 of the group (zero past nch).
struct Group {
  int G;      // blocks
  int nch;    // valid channels, <= G*L
  int lanes(int g, int L) const { return std::clamp(nch - g * L, 0, L); }
};

// One row of each tile of a group: tile g (at dst + g*gstride) gets
// dst[q*L + l] = source channel g*L + l at x, with q = x*up + off, for q in
// [0, width); zero elsewhere.  `src` points at (channel 0 of the group,
// x = 0); sc/sw: channel and x strides of the source.
template <typename S, typename T = typename compute_of<S>::type>
void pack_row(const S* src, int64_t sc, int64_t sw, Group grp, int64_t W, T* dst, int64_t gstride,
              int64_t width, int64_t up, int64_t off) {
  constexpr int L = kLanes<T>;
  using V = simd::vec_t<T>;
  // x range whose position q lies in [0, width)
  const int64_t xlo = off >= 0 ? 0 : (-off + up - 1) / up;
  const int64_t xhi = std::min<int64_t>(W, off >= width ? 0 : (width - 1 - off) / up + 1);
  for (int g = 0; g < grp.G; ++g) {
    T* d = dst + g * gstride;
    if (up == 1 && xhi > xlo) {
      std::fill(d, d + (xlo + off) * L, T(0));
      std::fill(d + (xhi + off) * L, d + width * L, T(0));
    } else {
      std::fill(d, d + width * L, T(0));
    }
  }
  if (xhi <= xlo) return;
  if (sc == 1) {
    // channels innermost: each pixel's channels are contiguous
    for (int64_t x = xlo; x < xhi; ++x) {
      const S* px = src + x * sw;
      const int64_t q = (x * up + off) * L;
      for (int g = 0; g < grp.G; ++g) {
        const int lanes = grp.lanes(g, L);
        if (lanes == L) {
          simd::storeu(dst + g * gstride + q, load_cvt<S>(px + g * L));
        } else {
          for (int l = 0; l < L; ++l) dst[g * gstride + q + l] = l < lanes ? to_compute(px[g * L + l]) : T(0);
        }
      }
    }
    return;
  }
  for (int g = 0; g < grp.G; ++g) {
    const int lanes = grp.lanes(g, L);
    const S* s = src + g * L * sc;
    T* d = dst + g * gstride;
    int64_t x = xlo;
    if (sw == 1) {
      // rows of x contiguous: transpose L x L blocks
      for (; x + L <= xhi; x += L) {
        V r[L];
        for (int l = 0; l < L; ++l) r[l] = l < lanes ? load_cvt<S>(s + l * sc + x) : V{};
        transpose<T>(r);
        for (int t = 0; t < L; ++t) simd::storeu(d + ((x + t) * up + off) * L, r[t]);
      }
      if constexpr (std::is_same_v<S, T>) {
        // the row's last n < L pixels: masked loads, one transpose (element by
        // element, rows of 7 and 14 pixels took most of a 7x7 NCHW forward)
        const int n = static_cast<int>(xhi - x);
        if (n >= 2) {
          V r[L];
          for (int l = 0; l < L; ++l) r[l] = l < lanes ? simd::load_partial(s + l * sc + x, n) : V{};
          transpose<T>(r);
          for (int t = 0; t < n; ++t) simd::storeu(d + ((x + t) * up + off) * L, r[t]);
          x = xhi;
        }
      }
    }
    for (; x < xhi; ++x) {
      T* dd = d + (x * up + off) * L;
      for (int l = 0; l < L; ++l) dd[l] = l < lanes ? to_compute(s[l * sc + x * sw]) : T(0);
    }
  }
}

// The inverse for output rows: destination channel g*L + l at x = buf[g*gstride
// + x*L + l] for x < W and the group's valid channels.
template <typename S, typename T>
void unpack_row(const T* buf, int64_t gstride, Group grp, int64_t W, S* dst, int64_t sc, int64_t sw) {
  constexpr int L = kLanes<T>;
  using V = simd::vec_t<T>;
  if (sc == 1) {
    for (int64_t x = 0; x < W; ++x) {
      S* px = dst + x * sw;
      for (int g = 0; g < grp.G; ++g) {
        const int lanes = grp.lanes(g, L);
        const T* b = buf + g * gstride + x * L;
        if (lanes == L) {
          store_cvt<S, T>(px + g * L, simd::loadu(b));
        } else {
          for (int l = 0; l < lanes; ++l) px[g * L + l] = from_compute<S, T>(b[l]);
        }
      }
    }
    return;
  }
  for (int g = 0; g < grp.G; ++g) {
    const int lanes = grp.lanes(g, L);
    const T* b = buf + g * gstride;
    S* d = dst + g * L * sc;
    int64_t x = 0;
    if (sw == 1) {
      for (; x + L <= W; x += L) {
        V r[L];
        for (int t = 0; t < L; ++t) r[t] = simd::loadu(b + (x + t) * L);
        transpose<T>(r);
        for (int l = 0; l < lanes; ++l) store_cvt<S, T>(d + l * sc + x, r[l]);
      }
      if constexpr (std::is_same_v<S, T>) {
        const int n = static_cast<int>(W - x);  // the last n < L pixels: masked stores
        if (n >= 2) {
          V r[L];
          for (int t = 0; t < L; ++t) r[t] = t < n ? simd::loadu(b + (x + t) * L) : V{};
          transpose<T>(r);
          for (int l = 0; l < lanes; ++l) simd::store_partial(d + l * sc + x, r[l], n);
          x = W;
        }
      }
    }
    for (; x < W; ++x)
      for (int l = 0; l < lanes; ++l) d[l * sc + x * sw] = from_compute<S, T>(b[x * L + l]);
  }
}

}  // namespace leanconv::cpu::LEANCONV_ISA
