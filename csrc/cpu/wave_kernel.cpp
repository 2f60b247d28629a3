// CPU wave-step kernels.  Compiled once per ISA variant into namespace
// leanconv::cpu::<LEANCONV_ISA> (see CMakeLists.txt).
//
// A row is done in one pass over vectors of N nodes: the 3-point column sums
// (rows above, at and below) of the vector and of the next one, and the box
// sums from them by shifting lanes in registers, so each node of the three
// rows is loaded once.  The node vectors are 16 bytes on AVX2 (measured
// fastest on a Zen 1 EPYC, whose 32-byte operations are two 16-byte ones and
// whose 32-byte lane shifts are slow) and 64 bytes on AVX-512 (one permute
// per shift).  Mirrored neighbours at the row ends (reflecting boundary) come
// from scalar sums.  Running every step of one item before the next keeps the
// item's fields in cache.
#include "cpu/wave_kernel.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 16;
#endif

template <typename T>
struct Lanes {
  static constexpr int N = kVecBytes / static_cast<int>(sizeof(T));
  typedef T vec __attribute__((vector_size(kVecBytes)));
};

template <typename T>
inline typename Lanes<T>::vec load(const T* p) {
  typename Lanes<T>::vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store(T* p, typename Lanes<T>::vec v) {
  std::memcpy(p, &v, sizeof(v));
}

// Lanes of (prev, cur) one to the left of cur, and of (cur, next) one to the right.
template <typename V, int... I>
inline V shift_left(V prev, V cur, std::integer_sequence<int, I...>) {
  return __builtin_shufflevector(prev, cur, (static_cast<int>(sizeof...(I)) - 1 + I)...);
}
template <typename V, int... I>
inline V shift_right(V cur, V next, std::integer_sequence<int, I...>) {
  return __builtin_shufflevector(cur, next, (I + 1)...);
}

inline int64_t mirror(int64_t i, int64_t n) { return i < 0 ? 1 : (i >= n ? n - 2 : i); }

// The coefficients of one row (pointers at its first node) and of the scheme.
template <typename T>
struct RowCoef {
  const T* ak;
  const T* bb;
  const T* nd;
  const T* f;
  const T* af;
  T k0, k1, k2;
};

// The new value of one node (or one vector of nodes), given the current value
// uc, the 3x3 box sum, the column sum at the node and the row sum at the node
// (only for RECT), and the old value o.
template <bool RECT, bool DAMPED, bool FORCED, typename V, typename T>
inline V node_update(const RowCoef<T>& c, V uc, V box, V col, V rx, V o, V ak, V bb,
                     V nd, V f, V af) {
  V s = c.k0 * uc - c.k2 * box;
  if constexpr (RECT) s += c.k1 * (col - rx);
  V v;
  if constexpr (DAMPED) {
    v = nd * o + bb * uc;
  } else {
    v = T(2) * uc - o;
  }
  v -= ak * s;
  if constexpr (FORCED) v += af * f;
  return v;
}

// One row: o (the previous values, overwritten) from the rows up, uc, dn.
template <typename T, bool RECT, bool DAMPED, bool FORCED>
inline void update_row(T* __restrict o, const T* __restrict up, const T* __restrict uc,
                       const T* __restrict dn, const RowCoef<T>& c, int64_t W) {
  using V = typename Lanes<T>::vec;
  constexpr int N = Lanes<T>::N;
  const auto lanes = std::make_integer_sequence<int, N>{};
  auto col_at = [&](int64_t j) { j = mirror(j, W); return up[j] + uc[j] + dn[j]; };
  auto u_at = [&](int64_t j) { return uc[mirror(j, W)]; };
  int64_t j0 = 0;
  if (W >= N) {
    V cprev{}, ccur = load(up) + load(uc) + load(dn), uprev{}, ucur = load(uc);
    cprev[N - 1] = col_at(-1);
    uprev[N - 1] = u_at(-1);
    auto chunk = [&](V cnext, V unext) {
      const V box = shift_left(cprev, ccur, lanes) + ccur + shift_right(ccur, cnext, lanes);
      V rx{};
      if constexpr (RECT) rx = shift_left(uprev, ucur, lanes) + ucur + shift_right(ucur, unext, lanes);
      const V zero{};
      const V v = node_update<RECT, DAMPED, FORCED>(
          c, ucur, box, ccur, rx, load(o + j0), load(c.ak + j0), DAMPED ? load(c.bb + j0) : zero,
          DAMPED ? load(c.nd + j0) : zero, FORCED ? load(c.f + j0) : zero,
          FORCED ? load(c.af + j0) : zero);
      store(o + j0, v);
      cprev = ccur, ccur = cnext, uprev = ucur, ucur = unext;
    };
    for (; j0 + 2 * N <= W; j0 += N) {
      const V unext = load(uc + j0 + N);
      chunk(load(up + j0 + N) + unext + load(dn + j0 + N), unext);
    }
    // the last whole vector: shift_right reads lane 0 of the next one only (mirrored past the end)
    V cnext{}, unext{};
    cnext[0] = col_at(j0 + N);
    unext[0] = u_at(j0 + N);
    chunk(cnext, unext);
    j0 += N;
  }
  for (int64_t j = j0; j < W; ++j) {
    const T box = col_at(j - 1) + col_at(j) + col_at(j + 1);
    const T rx = RECT ? u_at(j - 1) + uc[j] + u_at(j + 1) : T(0);
    o[j] = node_update<RECT, DAMPED, FORCED>(c, uc[j], box, col_at(j), rx, o[j], c.ak[j],
                                              DAMPED ? c.bb[j] : T(0), DAMPED ? c.nd[j] : T(0),
                                              FORCED ? c.f[j] : T(0), FORCED ? c.af[j] : T(0));
  }
}

// Rows [i0, i1) of one item: `u`, `out`, and the coefficient pointers of `d`
// already point at the item's planes.
template <typename T, bool RECT, bool DAMPED, bool FORCED>
void item_rows(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out, int64_t i0,
               int64_t i1) {
  const int64_t H = p.height, W = p.width;
  RowCoef<T> c{nullptr, nullptr, nullptr, nullptr, nullptr, static_cast<T>(p.k0),
               static_cast<T>(p.k1), static_cast<T>(p.k2)};
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t off = i * W;
    c.ak = d.a_k + off;
    if constexpr (DAMPED) c.bb = d.b + off, c.nd = d.negd + off;
    if constexpr (FORCED) c.f = d.force + off, c.af = d.a_f + off;
    update_row<T, RECT, DAMPED, FORCED>(out + off, u + mirror(i - 1, H) * W, u + off,
                                        u + mirror(i + 1, H) * W, c, W);
  }
}

// The coefficient pointers of `d` moved to batch item `item`.
template <typename T>
WaveStepData<T> item_data(const WaveStepParams& p, const WaveStepData<T>& d, int64_t item) {
  WaveStepData<T> di = d;
  di.a_k = d.a_k + item * d.s_a_k;
  if (p.damped) {
    di.b = d.b + item * d.s_b;
    di.negd = d.negd + item * d.s_negd;
  }
  if (p.forced) {
    di.force = d.force + item * d.s_force;
    di.a_f = d.a_f + item * d.s_a_f;
  }
  return di;
}

// Calls fn(integral_constant<bool, RECT>, ..DAMPED, ..FORCED) for the case of p.
template <typename F>
void with_case(const WaveStepParams& p, F&& fn) {
  using std::bool_constant;
  const int key = (p.rect ? 4 : 0) | (p.damped ? 2 : 0) | (p.forced ? 1 : 0);
  switch (key) {
    case 0: return fn(bool_constant<false>{}, bool_constant<false>{}, bool_constant<false>{});
    case 1: return fn(bool_constant<false>{}, bool_constant<false>{}, bool_constant<true>{});
    case 2: return fn(bool_constant<false>{}, bool_constant<true>{}, bool_constant<false>{});
    case 3: return fn(bool_constant<false>{}, bool_constant<true>{}, bool_constant<true>{});
    case 4: return fn(bool_constant<true>{}, bool_constant<false>{}, bool_constant<false>{});
    case 5: return fn(bool_constant<true>{}, bool_constant<false>{}, bool_constant<true>{});
    case 6: return fn(bool_constant<true>{}, bool_constant<true>{}, bool_constant<false>{});
    default: return fn(bool_constant<true>{}, bool_constant<true>{}, bool_constant<true>{});
  }
}

// One step of the rows [begin, end) of the batch flattened to (B*H) rows.
template <typename T>
void rows(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out, int64_t begin,
          int64_t end) {
  const int64_t H = p.height, plane = p.plane();
  with_case(p, [&](auto rect, auto damped, auto forced) {
    for (int64_t item = begin / H; item * H < end; ++item) {
      const int64_t i0 = std::max(begin - item * H, int64_t{0}), i1 = std::min(end - item * H, H);
      item_rows<T, rect, damped, forced>(p, item_data(p, d, item), u + item * plane,
                                         out + item * plane, i0, i1);
    }
  });
}

template <typename T>
void steps_items(const WaveStepParams& p, const WaveStepData<T>& d, int64_t steps, int64_t begin, int64_t end) {
  const int64_t plane = p.plane();
  with_case(p, [&](auto rect, auto damped, auto forced) {
    for (int64_t item = begin; item < end; ++item) {
      const WaveStepData<T> di = item_data(p, d, item);
      T* cur = d.now + item * plane;
      T* old = d.prev + item * plane;
      for (int64_t s = 0; s < steps; ++s) {
        item_rows<T, rect, damped, forced>(p, di, cur, old, 0, p.height);
        std::swap(cur, old);
      }
    }
  });
}

}  // namespace

void wave_steps_items(const WaveStepParams& p, const WaveStepData<float>& d, int64_t steps, int64_t begin,
                      int64_t end) {
  steps_items<float>(p, d, steps, begin, end);
}
void wave_steps_items(const WaveStepParams& p, const WaveStepData<double>& d, int64_t steps, int64_t begin,
                      int64_t end) {
  steps_items<double>(p, d, steps, begin, end);
}
void wave_step_rows(const WaveStepParams& p, const WaveStepData<float>& d, const float* u, float* out,
                    int64_t begin, int64_t end) {
  rows<float>(p, d, u, out, begin, end);
}
void wave_step_rows(const WaveStepParams& p, const WaveStepData<double>& d, const double* u, double* out,
                    int64_t begin, int64_t end) {
  rows<double>(p, d, u, out, begin, end);
}

}  // namespace leanconv::cpu::LEANCONV_ISA
