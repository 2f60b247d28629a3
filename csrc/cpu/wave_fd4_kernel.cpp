// CPU kernel of the fourth-order wave step (ops/wave_params.h, WaveFd4Params).
// Compiled once per ISA variant into namespace leanconv::cpu::<LEANCONV_ISA>.
//
// Two passes per step over one item's field, all steps of the item before the
// next one (its fields and the scratch field stay in cache): v = L u into the
// scratch field, then next = 2u - prev + s2 v + s4 L v into prev (damped: b (u + (s2 v +
// s4 L v) / 2) + negd prev).  The inner
// columns run as plain loops the compiler vectorises; the two mirrored
// columns at each end and the mirrored rows are handled by index and sign.
#include "cpu/wave_kernel.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

// Row i of a field extended by mirrored rows: the stored row and the sign of the image.
template <typename T>
struct Row {
  const T* p;
  T sign;
};

template <typename T>
inline Row<T> row(const T* f, int64_t i, int64_t H, int64_t W, T bottom, T top) {
  if (i < 0) return {f + (-i) * W, bottom};
  if (i >= H) return {f + (2 * (H - 1) - i) * W, top};
  return {f + i * W, T(1)};
}

// wx * Dxx(u) + wy * Dyy(u) at column j of row r[2] (r[0..4]: rows i-2..i+2), for an end
// column (mirrored neighbours along W read through the sides' signs).
template <typename T>
inline T lap_edge(const Row<T>* r, int64_t j, int64_t W, T wx, T wy, T left, T right) {
  auto at = [&](int64_t k) -> T {
    if (k < 0) return left * r[2].p[-k];
    if (k >= W) return right * r[2].p[2 * (W - 1) - k];
    return r[2].p[k];
  };
  const T c = r[2].p[j];
  const T dx = T(16) * (at(j - 1) + at(j + 1)) - (at(j - 2) + at(j + 2)) - T(30) * c;
  const T dy = T(16) * (r[1].sign * r[1].p[j] + r[3].sign * r[3].p[j]) -
               (r[0].sign * r[0].p[j] + r[4].sign * r[4].p[j]) - T(30) * c;
  return wx * dx + wy * dy;
}

// The per-node coefficients an update pass reads besides cc (null where not used).
template <typename T>
struct Extra {
  const T* f = nullptr;
  const T* af = nullptr;
  const T* b = nullptr;
  const T* negd = nullptr;
};

template <typename T, bool UPDATE, bool FORCED, bool DAMPED>
void row_pass(const WaveFd4Params& p, const T* __restrict src, const T* __restrict cc, int64_t i,
              T* __restrict out, const T* __restrict u, const Extra<T>& e) {
  const int64_t H = p.height, W = p.width;
  const T wx = T(p.wx), wy = T(p.wy), s2 = T(p.s2), s4 = T(p.s4);
  const T left = T(p.sign_left), right = T(p.sign_right);
  Row<T> r[5];
  for (int k = 0; k < 5; ++k) r[k] = row(src, i - 2 + k, H, W, T(p.sign_bottom), T(p.sign_top));
  const T* __restrict a0 = r[0].p;
  const T* __restrict a1 = r[1].p;
  const T* __restrict a2 = r[2].p;
  const T* __restrict a3 = r[3].p;
  const T* __restrict a4 = r[4].p;
  const T g0 = r[0].sign, g1 = r[1].sign, g3 = r[3].sign, g4 = r[4].sign;
  const T* __restrict c = cc + i * W;
  T* __restrict o = out + i * W;
  const T* __restrict uu = UPDATE ? u + i * W : nullptr;
  const T* __restrict vv = UPDATE ? src + i * W : nullptr;
  const T* __restrict f = FORCED ? e.f + i * W : nullptr;
  const T* __restrict af = FORCED ? e.af + i * W : nullptr;
  const T* __restrict bb = DAMPED ? e.b + i * W : nullptr;
  const T* __restrict nd = DAMPED ? e.negd + i * W : nullptr;
  auto finish = [&](int64_t j, T lap) {
    const T l = c[j] * lap;
    if constexpr (UPDATE) {
      T next;
      if constexpr (DAMPED)
        next = bb[j] * (uu[j] + T(0.5) * (s2 * vv[j] + s4 * l)) + nd[j] * o[j];
      else
        next = T(2) * uu[j] - o[j] + s2 * vv[j] + s4 * l;
      if constexpr (FORCED) next += af[j] * f[j];
      o[j] = next;
    } else {
      o[j] = l;
    }
  };
  const int64_t edge = W < 4 ? W : 2;
  for (int64_t j = 0; j < edge; ++j) finish(j, lap_edge(r, j, W, wx, wy, left, right));
  for (int64_t j = 2; j < W - 2; ++j) {
    const T dx = T(16) * (a2[j - 1] + a2[j + 1]) - (a2[j - 2] + a2[j + 2]) - T(30) * a2[j];
    const T dy = T(16) * (g1 * a1[j] + g3 * a3[j]) - (g0 * a0[j] + g4 * a4[j]) - T(30) * a2[j];
    finish(j, wx * dx + wy * dy);
  }
  for (int64_t j = std::max<int64_t>(W - 2, edge); j < W; ++j) finish(j, lap_edge(r, j, W, wx, wy, left, right));
}

template <typename T, bool FORCED, bool DAMPED>
void update_rows(const WaveFd4Params& p, const T* v, const T* cc, T* old, const T* u, const Extra<T>& e) {
  for (int64_t i = 0; i < p.height; ++i) row_pass<T, true, FORCED, DAMPED>(p, v, cc, i, old, u, e);
}

}  // namespace

template <typename T>
void wave_fd4_items_impl(const WaveFd4Params& p, const WaveFd4Data<T>& d, int64_t steps, int64_t begin,
                         int64_t end) {
  const int64_t H = p.height, plane = p.plane();
  std::vector<T> scratch(static_cast<size_t>(plane));
  T* v = scratch.data();
  for (int64_t item = begin; item < end; ++item) {
    T* u = d.now + item * plane;
    T* old = d.prev + item * plane;
    const T* cc = d.cc + item * d.s_cc;
    Extra<T> e;
    if (p.forced) e.f = d.force + item * d.s_force, e.af = d.a_f + item * d.s_a_f;
    if (p.damped) e.b = d.b + item * d.s_b, e.negd = d.negd + item * d.s_negd;
    for (int64_t s = 0; s < steps; ++s) {
      for (int64_t i = 0; i < H; ++i) row_pass<T, false, false, false>(p, u, cc, i, v, nullptr, e);
      if (p.forced && p.damped)
        update_rows<T, true, true>(p, v, cc, old, u, e);
      else if (p.forced)
        update_rows<T, true, false>(p, v, cc, old, u, e);
      else if (p.damped)
        update_rows<T, false, true>(p, v, cc, old, u, e);
      else
        update_rows<T, false, false>(p, v, cc, old, u, e);
      std::swap(u, old);
    }
  }
}

void wave_fd4_items(const WaveFd4Params& p, const WaveFd4Data<float>& d, int64_t steps, int64_t begin,
                    int64_t end) {
  wave_fd4_items_impl(p, d, steps, begin, end);
}
void wave_fd4_items(const WaveFd4Params& p, const WaveFd4Data<double>& d, int64_t steps, int64_t begin,
                    int64_t end) {
  wave_fd4_items_impl(p, d, steps, begin, end);
}

}  // namespace leanconv::cpu::LEANCONV_ISA
