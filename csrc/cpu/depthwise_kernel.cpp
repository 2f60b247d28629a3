// CPU depthwise convolution kernels.  Compiled once per ISA variant into
// namespace leanconv::cpu::<LEANCONV_ISA> (see CMakeLists.txt).
//
// Every plane is first copied into a zero-padded scratch buffer whose origin
// is the first input position any window reads, so the inner loops carry no
// boundary tests.  The copy costs O(H*W) against O(H*W*k^2) arithmetic.
#include "cpu/depthwise_kernel.h"

#include <algorithm>
#include <vector>

#include "cpu/simd.h"

namespace leanconv::cpu::LEANCONV_ISA {

namespace {

using simd::loadu;
using simd::round_up;
using simd::splat;
using simd::storeu;
using simd::vec_t;

// Padded view of one input plane: positions [0, ext) per axis, where position
// i of axis a holds input index i - pad[a] (zero outside the input).
struct PaddedPlane {
  int64_t ext[3];   // D, H, W extents read by the windows
  int64_t row;      // allocated row length (>= ext[2] + slack for vector over-reads)
  int64_t plane() const { return ext[0] * ext[1] * row; }
};

PaddedPlane padded_geometry(const DepthwiseParams& p, int64_t slack) {
  PaddedPlane g;
  for (int a = 0; a < 3; ++a) g.ext[a] = (p.out[a] - 1) * p.stride[a] + (p.kernel[a] - 1) * p.dilation[a] + 1;
  g.row = round_up(g.ext[2] + slack, 16);
  return g;
}

template <typename T>
void copy_padded(const DepthwiseParams& p, const PaddedPlane& g, const T* src, T* dst) {
  const int64_t H = p.in[1], W = p.in[2], D = p.in[0];
  for (int64_t z = 0; z < g.ext[0]; ++z) {
    const int64_t sz = z - p.pad[0];
    for (int64_t yy = 0; yy < g.ext[1]; ++yy) {
      T* drow = dst + (z * g.ext[1] + yy) * g.row;
      const int64_t sy = yy - p.pad[1];
      if (sz < 0 || sz >= D || sy < 0 || sy >= H) {
        std::fill(drow, drow + g.row, T(0));
        continue;
      }
      const T* srow = src + (sz * H + sy) * W;
      // dst x in [x0, x1) maps to src x - pad in [0, W)
      const int64_t x0 = std::clamp<int64_t>(p.pad[2], 0, g.row);
      const int64_t x1 = std::clamp<int64_t>(p.pad[2] + W, 0, g.row);
      std::fill(drow, drow + x0, T(0));
      if (x1 > x0) std::memcpy(drow + x0, srow + (x0 - p.pad[2]), (x1 - x0) * sizeof(T));
      std::fill(drow + std::max(x0, x1), drow + g.row, T(0));
    }
  }
}

// Forward over one padded plane, stride 1 along W: each block of NV vectors of
// one output row accumulates in registers; with R > 1 (stride 1 and dilation 1
// along H) R output rows share every input-row load.
template <typename T, int NV, int R>
void forward_rows_vec(const DepthwiseParams& p, const PaddedPlane& g, const T* buf, const T* wc,
                      T bval, T* yp, int64_t od, int64_t oy0) {
  constexpr int L = simd::Vec<T>::lanes;
  using V = vec_t<T>;
  const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  const int64_t OW = p.out[2], OH = p.out[1];
  const int64_t dx = p.dilation[2];
  for (int64_t x0 = 0; x0 < OW; x0 += NV * L) {
    V acc[R][NV];
    for (int j = 0; j < R; ++j)
      for (int v = 0; v < NV; ++v) acc[j][v] = splat<T>(bval);
    for (int64_t kd = 0; kd < KD; ++kd) {
      const T* pz = buf + (od * p.stride[0] + kd * p.dilation[0]) * g.ext[1] * g.row;
      const T* wz = wc + kd * KH * KW;
      if constexpr (R == 1) {
        for (int64_t ky = 0; ky < KH; ++ky) {
          const T* row = pz + (oy0 * p.stride[1] + ky * p.dilation[1]) * g.row + x0;
          const T* wr = wz + ky * KW;
          for (int64_t kx = 0; kx < KW; ++kx) {
            const T wv = wr[kx];
            for (int v = 0; v < NV; ++v) acc[0][v] += loadu(row + kx * dx + v * L) * wv;
          }
        }
      } else {
        // stride 1, dilation 1 along H: input row oy0 + r feeds output row
        // oy0 + j through kernel row r - j.
        for (int64_t r = 0; r < KH + R - 1; ++r) {
          const T* row = pz + (oy0 + r) * g.row + x0;
          for (int64_t kx = 0; kx < KW; ++kx) {
            V in[NV];
            for (int v = 0; v < NV; ++v) in[v] = loadu(row + kx * dx + v * L);
#pragma GCC unroll 8
            for (int j = 0; j < R; ++j) {
              const int64_t ky = r - j;
              if (ky >= 0 && ky < KH) {
                const T wv = wz[ky * KW + kx];
                for (int v = 0; v < NV; ++v) acc[j][v] += in[v] * wv;
              }
            }
          }
        }
      }
    }
    for (int j = 0; j < R; ++j) {
      T* yrow = yp + (od * OH + oy0 + j) * OW + x0;
      for (int v = 0; v < NV; ++v) {
        const int64_t rem = OW - x0 - v * L;
        if (rem >= L) storeu(yrow + v * L, acc[j][v]);
        else if (rem > 0) simd::store_partial(yrow + v * L, acc[j][v], static_cast<int>(rem));
      }
    }
  }
}

template <typename T, int NV, int R>
void forward_plane_vec(const DepthwiseParams& p, const PaddedPlane& g, const T* buf, const T* wc,
                       T bval, T* yp) {
  const int64_t OH = p.out[1];
  const bool share_rows = p.stride[1] == 1 && p.dilation[1] == 1;
  for (int64_t od = 0; od < p.out[0]; ++od) {
    int64_t oy = 0;
    if (share_rows)
      for (; oy + R <= OH; oy += R) forward_rows_vec<T, NV, R>(p, g, buf, wc, bval, yp, od, oy);
    for (; oy < OH; ++oy) forward_rows_vec<T, NV, 1>(p, g, buf, wc, bval, yp, od, oy);
  }
}

// Any stride: plain loops over the padded plane.
template <typename T>
void forward_plane_scalar(const DepthwiseParams& p, const PaddedPlane& g, const T* buf,
                          const T* wc, T bval, T* yp) {
  const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  for (int64_t od = 0; od < p.out[0]; ++od)
    for (int64_t oy = 0; oy < p.out[1]; ++oy)
      for (int64_t ox = 0; ox < p.out[2]; ++ox) {
        T s = bval;
        for (int64_t kd = 0; kd < KD; ++kd)
          for (int64_t ky = 0; ky < KH; ++ky) {
            const T* row = buf + ((od * p.stride[0] + kd * p.dilation[0]) * g.ext[1] +
                                  oy * p.stride[1] + ky * p.dilation[1]) * g.row +
                           ox * p.stride[2];
            const T* wr = wc + (kd * KH + ky) * KW;
            for (int64_t kx = 0; kx < KW; ++kx) s += wr[kx] * row[kx * p.dilation[2]];
          }
        yp[(od * p.out[1] + oy) * p.out[2] + ox] = s;
      }
}

template <typename T>
using PlaneFn = void (*)(const DepthwiseParams&, const PaddedPlane&, const T*, const T*, T, T*);

// Row-sharing factor R and vector count NV: R*NV accumulators plus NV loaded
// vectors must fit the register file.
template <typename T>
PlaneFn<T> pick_forward(const DepthwiseParams& p, int& nv_out) {
  constexpr int L = simd::Vec<T>::lanes;
  const int64_t ow = p.out[2];
  if (p.stride[2] != 1) {
    nv_out = 0;
    return &forward_plane_scalar<T>;
  }
  constexpr bool big = simd::kVecRegs >= 32;
  if (ow > 2 * L) {
    nv_out = 4;
    return big ? &forward_plane_vec<T, 4, 4> : &forward_plane_vec<T, 4, 2>;
  }
  if (ow > L) {
    nv_out = 2;
    return big ? &forward_plane_vec<T, 2, 8> : &forward_plane_vec<T, 2, 4>;
  }
  nv_out = 1;
  return big ? &forward_plane_vec<T, 1, 8> : &forward_plane_vec<T, 1, 6>;
}

template <typename T>
void forward_planar(const DepthwiseParams& p, const T* x, const T* w, const T* bias, T* y,
                    int64_t begin, int64_t end) {
  constexpr int L = simd::Vec<T>::lanes;
  int nv = 0;
  const PlaneFn<T> fn = pick_forward<T>(p, nv);
  // Slack: a vector block may read NV*L past the last output column.
  const PaddedPlane g = padded_geometry(p, 4 * L);
  std::vector<T> buf(g.plane());
  const int64_t C = p.channels, KV = p.kernel_volume();
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t c = plane % C;
    copy_padded(p, g, x + plane * p.in_plane(), buf.data());
    fn(p, g, buf.data(), w + c * KV, bias ? bias[c] : T(0), y + plane * p.out_plane());
  }
}

template <typename T>
void backward_input_scatter(const DepthwiseParams& p, const T* gy, const T* w, T* gx,
                            int64_t begin, int64_t end) {
  const PaddedPlane g = padded_geometry(p, 0);
  std::vector<T> buf(g.plane());
  const int64_t C = p.channels, KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  const int64_t D = p.in[0], H = p.in[1], W = p.in[2];
  for (int64_t plane = begin; plane < end; ++plane) {
    const T* wc = w + (plane % C) * p.kernel_volume();
    const T* gp = gy + plane * p.out_plane();
    std::fill(buf.begin(), buf.end(), T(0));
    for (int64_t od = 0; od < p.out[0]; ++od)
      for (int64_t oy = 0; oy < p.out[1]; ++oy)
        for (int64_t ox = 0; ox < p.out[2]; ++ox) {
          const T gv = gp[(od * p.out[1] + oy) * p.out[2] + ox];
          for (int64_t kd = 0; kd < KD; ++kd)
            for (int64_t ky = 0; ky < KH; ++ky) {
              T* row = buf.data() + ((od * p.stride[0] + kd * p.dilation[0]) * g.ext[1] +
                                     oy * p.stride[1] + ky * p.dilation[1]) * g.row +
                       ox * p.stride[2];
              const T* wr = wc + (kd * KH + ky) * KW;
              for (int64_t kx = 0; kx < KW; ++kx) row[kx * p.dilation[2]] += gv * wr[kx];
            }
        }
    // Crop the padded gradient back to the input; inputs no window reads get 0.
    T* dst = gx + plane * p.in_plane();
    for (int64_t z = 0; z < D; ++z)
      for (int64_t yy = 0; yy < H; ++yy)
        for (int64_t xx = 0; xx < W; ++xx) {
          const int64_t bz = z + p.pad[0], by = yy + p.pad[1], bx = xx + p.pad[2];
          const bool inside = bz < g.ext[0] && by < g.ext[1] && bx < g.ext[2];
          dst[(z * H + yy) * W + xx] = inside ? buf[(bz * g.ext[1] + by) * g.row + bx] : T(0);
        }
  }
}

// grad_weight over one padded plane, stride 1 along W: for each kernel row a
// block of KB taps accumulates vector partial sums over the whole plane.
template <typename T, int KB>
void backward_weight_plane_vec(const DepthwiseParams& p, const PaddedPlane& g, const T* buf,
                               const T* gpad, int64_t grow, T* gw) {
  constexpr int L = simd::Vec<T>::lanes;
  using V = vec_t<T>;
  const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  const int64_t dx = p.dilation[2];
  for (int64_t kd = 0; kd < KD; ++kd)
    for (int64_t ky = 0; ky < KH; ++ky)
      for (int64_t kx0 = 0; kx0 < KW; kx0 += KB) {
        const int kb = static_cast<int>(std::min<int64_t>(KB, KW - kx0));
        V acc[KB];
        for (int k = 0; k < KB; ++k) acc[k] = V{};
        for (int64_t od = 0; od < p.out[0]; ++od) {
          const T* pz = buf + (od * p.stride[0] + kd * p.dilation[0]) * g.ext[1] * g.row;
          for (int64_t oy = 0; oy < p.out[1]; ++oy) {
            const T* in = pz + (oy * p.stride[1] + ky * p.dilation[1]) * g.row + kx0 * dx;
            const T* gr = gpad + (od * p.out[1] + oy) * grow;
            for (int64_t x0 = 0; x0 < grow; x0 += L) {
              const V gv = loadu(gr + x0);
#pragma GCC unroll 16
              for (int k = 0; k < KB; ++k)
                if (k < kb) acc[k] += gv * loadu(in + x0 + k * dx);
            }
          }
        }
        T* out = gw + (kd * KH + ky) * KW + kx0;
        for (int k = 0; k < kb; ++k) out[k] += simd::hsum<T>(acc[k]);
      }
}

template <typename T>
void backward_weight_plane_scalar(const DepthwiseParams& p, const PaddedPlane& g, const T* buf,
                                  const T* gp, T* gw) {
  const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
  for (int64_t kd = 0; kd < KD; ++kd)
    for (int64_t ky = 0; ky < KH; ++ky)
      for (int64_t kx = 0; kx < KW; ++kx) {
        T s = 0;
        for (int64_t od = 0; od < p.out[0]; ++od)
          for (int64_t oy = 0; oy < p.out[1]; ++oy) {
            const T* row = buf + ((od * p.stride[0] + kd * p.dilation[0]) * g.ext[1] +
                                  oy * p.stride[1] + ky * p.dilation[1]) * g.row +
                           kx * p.dilation[2];
            const T* gr = gp + (od * p.out[1] + oy) * p.out[2];
            for (int64_t ox = 0; ox < p.out[2]; ++ox) s += gr[ox] * row[ox * p.stride[2]];
          }
        gw[(kd * KH + ky) * KW + kx] += s;
      }
}

template <typename T>
void backward_weight_planar(const DepthwiseParams& p, const T* x, const T* gy, T* gw_partial,
                            int64_t begin, int64_t end) {
  constexpr int L = simd::Vec<T>::lanes;
  const bool vec = p.stride[2] == 1;
  // Gradient rows are copied to length grow (a multiple of L, zero-filled) so
  // vector loads past the last column read zeros; the padded input must then
  // hold grow + (kW-1)*dilation columns.
  const int64_t grow = round_up(p.out[2], L);
  const PaddedPlane g = padded_geometry(p, grow - p.out[2] + L);
  std::vector<T> buf(g.plane());
  std::vector<T> gpad(vec ? p.out[0] * p.out[1] * grow : 0);
  const int64_t C = p.channels, KV = p.kernel_volume();
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t c = plane % C;
    copy_padded(p, g, x + plane * p.in_plane(), buf.data());
    const T* gp = gy + plane * p.out_plane();
    T* gw = gw_partial + c * KV;
    if (vec) {
      const int64_t rows = p.out[0] * p.out[1];
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(gpad.data() + r * grow, gp + r * p.out[2], p.out[2] * sizeof(T));
        std::fill(gpad.data() + r * grow + p.out[2], gpad.data() + (r + 1) * grow, T(0));
      }
      constexpr int KB = simd::kVecRegs >= 32 ? 16 : 8;
      backward_weight_plane_vec<T, KB>(p, g, buf.data(), gpad.data(), grow, gw);
    } else {
      backward_weight_plane_scalar<T>(p, g, buf.data(), gp, gw);
    }
  }
}

}  // namespace

#define LEANCONV_DEFINE(T)                                                                    \
  void depthwise_forward_planar(const DepthwiseParams& p, const T* x, const T* w,           \
                                const T* bias, T* y, int64_t begin, int64_t end) {          \
    forward_planar<T>(p, x, w, bias, y, begin, end);                                         \
  }                                                                                          \
  void depthwise_backward_input_planar_scatter(const DepthwiseParams& p, const T* gy,        \
                                               const T* w, T* gx, int64_t begin,             \
                                               int64_t end) {                                \
    backward_input_scatter<T>(p, gy, w, gx, begin, end);                                     \
  }                                                                                          \
  void depthwise_backward_weight_planar(const DepthwiseParams& p, const T* x, const T* gy,  \
                                        T* gw_partial, int64_t begin, int64_t end) {        \
    backward_weight_planar<T>(p, x, gy, gw_partial, begin, end);                             \
  }

LEANCONV_DEFINE(float)
LEANCONV_DEFINE(double)

}  // namespace leanconv::cpu::LEANCONV_ISA
