// CPU wave-step kernels.  Compiled once per ISA variant into namespace
// leanconv::cpu::<LEANCONV_ISA> (see CMakeLists.txt).
//
// A row is done in two vectorisable passes: the 3-point column sums of the
// rows above, at and below (mirrored at the ends), then the 3x3 box sums and
// the update.  Running every step of one item before the next keeps the
// item's fields in cache.
#include "cpu/wave_kernel.h"

#include <utility>
#include <vector>

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

inline int64_t mirror(int64_t i, int64_t n) { return i < 0 ? 1 : (i >= n ? n - 2 : i); }

// 3-point sums down the columns of rows up, uc, dn into col[1..W], mirrored into col[0], col[W+1].
template <typename T>
inline void column_sums(T* __restrict col, const T* __restrict up, const T* __restrict uc,
                        const T* __restrict dn, int64_t W) {
  for (int64_t j = 0; j < W; ++j) col[j + 1] = up[j] + uc[j] + dn[j];
  col[0] = col[2];
  col[W + 1] = col[W - 1];
}

// 3-point sums along a row, mirrored at its ends.
template <typename T>
inline void row_sums(T* __restrict rx, const T* __restrict uc, int64_t W) {
  rx[0] = uc[0] + 2 * uc[1];
  for (int64_t j = 1; j < W - 1; ++j) rx[j] = uc[j - 1] + uc[j] + uc[j + 1];
  rx[W - 1] = uc[W - 1] + 2 * uc[W - 2];
}

// The update of one row (restrict-qualified parameters, so the loop vectorises
// without run-time alias checks).
template <typename T, bool RECT, bool DAMPED, bool FORCED>
inline void update_row(T* __restrict o, const T* __restrict uc, const T* __restrict col,
                       const T* __restrict rx, const T* __restrict ak, const T* __restrict bb,
                       const T* __restrict nd, const T* __restrict f, const T* __restrict af, T k0, T k1,
                       T k2, int64_t W) {
  for (int64_t j = 0; j < W; ++j) {
    const T box = col[j] + col[j + 1] + col[j + 2];
    T s = k0 * uc[j] - k2 * box;
    if constexpr (RECT) s += k1 * (col[j + 1] - rx[j]);
    T v;
    if constexpr (DAMPED) {
      v = nd[j] * o[j] + bb[j] * uc[j];
    } else {
      v = T(2) * uc[j] - o[j];
    }
    v -= ak[j] * s;
    if constexpr (FORCED) v += af[j] * f[j];
    o[j] = v;
  }
}

template <typename T, bool RECT, bool DAMPED, bool FORCED>
void rows_impl(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out, int64_t begin,
               int64_t end) {
  const int64_t H = p.height, W = p.width, plane = p.plane();
  const T k0 = static_cast<T>(p.k0), k1 = static_cast<T>(p.k1), k2 = static_cast<T>(p.k2);
  std::vector<T> col_buf(W + 2), rx_buf(RECT ? W : 1);
  T* col = col_buf.data();
  T* rx = rx_buf.data();
  for (int64_t r = begin; r < end; ++r) {
    const int64_t item = r / H, i = r % H;
    const T* base = u + item * plane;
    const T* uc = base + i * W;
    column_sums(col, base + mirror(i - 1, H) * W, uc, base + mirror(i + 1, H) * W, W);
    if constexpr (RECT) row_sums(rx, uc, W);
    const int64_t off = i * W;
    update_row<T, RECT, DAMPED, FORCED>(
        out + item * plane + off, uc, col, rx, d.a_k + item * d.s_a_k + off,
        DAMPED ? d.b + item * d.s_b + off : nullptr, DAMPED ? d.negd + item * d.s_negd + off : nullptr,
        FORCED ? d.force + item * d.s_force + off : nullptr, FORCED ? d.a_f + item * d.s_a_f + off : nullptr,
        k0, k1, k2, W);
  }
}

template <typename T>
void rows(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out, int64_t begin, int64_t end) {
  const int key = (p.rect ? 4 : 0) | (p.damped ? 2 : 0) | (p.forced ? 1 : 0);
  switch (key) {
    case 0: return rows_impl<T, false, false, false>(p, d, u, out, begin, end);
    case 1: return rows_impl<T, false, false, true>(p, d, u, out, begin, end);
    case 2: return rows_impl<T, false, true, false>(p, d, u, out, begin, end);
    case 3: return rows_impl<T, false, true, true>(p, d, u, out, begin, end);
    case 4: return rows_impl<T, true, false, false>(p, d, u, out, begin, end);
    case 5: return rows_impl<T, true, false, true>(p, d, u, out, begin, end);
    case 6: return rows_impl<T, true, true, false>(p, d, u, out, begin, end);
    default: return rows_impl<T, true, true, true>(p, d, u, out, begin, end);
  }
}

template <typename T>
void steps_items(const WaveStepParams& p, const WaveStepData<T>& d, int64_t steps, int64_t begin, int64_t end) {
  const int64_t plane = p.plane();
  for (int64_t item = begin; item < end; ++item) {
    // rows() indexes fields from a batch base: shift the bases so `item` is row 0..H-1 of item 0
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
    T* cur = d.now + item * plane;
    T* old = d.prev + item * plane;
    for (int64_t s = 0; s < steps; ++s) {
      rows<T>(p, di, cur, old, 0, p.height);
      std::swap(cur, old);
    }
  }
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
