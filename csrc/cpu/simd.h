// Portable SIMD helpers for the CPU kernels: GCC/Clang vector extensions whose
// width follows the instruction set the file is compiled for (64 bytes with
// AVX-512, 32 with AVX2, 16 otherwise).  Include only from *_kernel.cpp files,
// which CMake compiles once per ISA variant.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace leanconv::cpu::simd {

#if defined(__AVX512F__)
inline constexpr int kVecBytes = 64;
inline constexpr int kVecRegs = 32;
#elif defined(__AVX2__)
inline constexpr int kVecBytes = 32;
inline constexpr int kVecRegs = 16;
#else
inline constexpr int kVecBytes = 16;
inline constexpr int kVecRegs = 16;
#endif

// f(integral_constant<int, 0>) ... f(integral_constant<int, N-1>), unrolled
// (the lambdas the kernels pass must be inlined too, or the accumulator arrays
// they touch live in memory instead of registers).
template <int N, typename F>
[[gnu::always_inline]] inline void static_for(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) __attribute__((always_inline)) {
    (f(std::integral_constant<int, I>{}), ...);
  }(std::make_integer_sequence<int, N>{});
}

template <typename T>
struct Vec {
  static constexpr int lanes = kVecBytes / static_cast<int>(sizeof(T));
  typedef T type __attribute__((vector_size(kVecBytes)));
};

template <typename T>
using vec_t = typename Vec<T>::type;

template <typename T>
inline vec_t<T> loadu(const T* p) {
  vec_t<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void storeu(T* p, vec_t<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

// Stores v at p, which must be aligned to the vector size, without bringing
// the line into the caches first (a non-temporal store on x86; a plain store
// elsewhere).  Call stream_fence() before other threads read what was stored.
template <typename T>
inline void store_stream(T* p, vec_t<T> v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return _mm512_stream_ps(p, (__m512)v);
  if constexpr (std::is_same_v<T, double>) return _mm512_stream_pd(p, (__m512d)v);
#elif defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) return _mm256_stream_ps(p, (__m256)v);
  if constexpr (std::is_same_v<T, double>) return _mm256_stream_pd(p, (__m256d)v);
#elif defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) return _mm_stream_ps(p, (__m128)v);
  if constexpr (std::is_same_v<T, double>) return _mm_stream_pd(p, (__m128d)v);
#endif
  storeu(p, v);
}

inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// The first n lanes (0 < n <= lanes) from p, zeros in the others; nothing past
// p + n is read (masked loads where the instruction set has them).
template <typename T>
inline vec_t<T> load_partial(const T* p, int n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return (vec_t<T>)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
  if constexpr (std::is_same_v<T, double>) return (vec_t<T>)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>)
    return (vec_t<T>)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
  if constexpr (std::is_same_v<T, double>)
    return (vec_t<T>)_mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)));
#endif
  vec_t<T> v{};
  std::memcpy(&v, p, n * sizeof(T));
  return v;
}

// Loads of lanes lo <= i < hi from p + i (0 <= lo <= hi <= lanes), zeros in
// the others; nothing outside [p + lo, p + hi) is read, so p itself may point
// before the data.  The mask is built once, for many loads (masked loads
// where the instruction set has them).
template <typename T>
struct LaneRange {
#if defined(__AVX512F__)
  unsigned m;
  LaneRange(int lo, int hi) : m(((1u << hi) - 1) & ~((1u << lo) - 1)) {}
  vec_t<T> load(const T* p) const {
    if constexpr (std::is_same_v<T, float>) return (vec_t<T>)_mm512_maskz_loadu_ps((__mmask16)m, p);
    else return (vec_t<T>)_mm512_maskz_loadu_pd((__mmask8)m, p);
  }
#elif defined(__AVX2__)
  __m256i m;
  LaneRange(int lo, int hi) {
    if constexpr (std::is_same_v<T, float>) {
      const __m256i i = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), i),
                              _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), i));
    } else {
      const __m256i i = _mm256_setr_epi64x(0, 1, 2, 3);
      m = _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(lo), i),
                              _mm256_cmpgt_epi64(_mm256_set1_epi64x(hi), i));
    }
  }
  vec_t<T> load(const T* p) const {
    if constexpr (std::is_same_v<T, float>) return (vec_t<T>)_mm256_maskload_ps(p, m);
    else return (vec_t<T>)_mm256_maskload_pd(p, m);
  }
#else
  int lo, hi;
  LaneRange(int l, int h) : lo(l), hi(h) {}
  vec_t<T> load(const T* p) const {
    T tmp[Vec<T>::lanes] = {};
    for (int i = lo; i < hi; ++i) tmp[i] = p[i];
    vec_t<T> v;
    std::memcpy(&v, tmp, sizeof(v));
    return v;
  }
#endif
};

// Stores the first n lanes of v (nothing past p + n is written).
template <typename T>
inline void store_partial(T* p, vec_t<T> v, int n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
  if constexpr (std::is_same_v<T, double>) return _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), (__m512d)v);
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>)
    return _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                               (__m256)v);
  if constexpr (std::is_same_v<T, double>)
    return _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)), (__m256d)v);
#endif
  T tmp[Vec<T>::lanes];
  std::memcpy(tmp, &v, sizeof(v));
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}

// v, kept in a register: without this the compiler folds a load that feeds
// several FMAs into each of them (one load per FMA instead of one per vector;
// the direct depthwise path ran 1.1-1.3x faster with it).
template <typename V>
[[gnu::always_inline]] inline V in_register(V v) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+v"(v));
#endif
  return v;
}

template <typename T>
inline vec_t<T> splat(T s) {
  return vec_t<T>{} + s;
}

template <typename T>
inline T hsum(vec_t<T> v) {
  T tmp[Vec<T>::lanes];
  std::memcpy(tmp, &v, sizeof(v));
  T s = 0;
  for (int i = 0; i < Vec<T>::lanes; ++i) s += tmp[i];
  return s;
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

}  // namespace leanconv::cpu::simd
