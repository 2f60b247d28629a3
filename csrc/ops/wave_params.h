// Arguments of the wave-step kernels (explicit lumped-Q1 finite elements,
// central differences), shared by the CPU and CUDA code.  Plain C++.
//
// For a batch of B independent nodal fields of H x W, one step computes
//
//   next = negd*prev + b*u - a_k*(k0*u - k2*box(u) + k1*(cy(u) - rx(u))) + a_f*force
//
// where box is the 3x3 sum, cy the 3-point sum along H and rx along W, all of
// the field mirrored about every side (index -1 reads 1, index H reads H-2).
// That is M^{-1}-scaled stiffness of bilinear elements on hx x hy cells with
// k0 = 3/2 (r + 1/r), k1 = (r - 1/r)/2, k2 = (r + 1/r)/6, r = hy/hx.  Absent
// b and negd mean b = 2 and negd = -1 (no damping).  `next` overwrites
// `prev`; with several steps the two buffers swap roles after every step.
#pragma once

#include <cstdint>

namespace leanconv {

// What both wave-step ops (wave_step_, wave_fd4_step_) share: B independent
// H x W fields, the optional damping (b with negd) and the optional load
// (force with a_f, one step only).
struct WaveFields {
  int64_t batch = 0;
  int64_t height = 0;   // H (rows)
  int64_t width = 0;    // W (columns, contiguous)
  bool damped = false;  // b / negd given
  bool forced = false;  // force / a_f given (one step only)
  int64_t plane() const { return height * width; }
};

struct WaveStepParams : WaveFields {
  double k0 = 0, k1 = 0, k2 = 0;
  bool rect = false;  // k1 != 0
};

// Pointers of one call that both ops share: the two state buffers and the
// damping and load coefficients.  Coefficient arrays have batch 1 (shared,
// stride 0) or B (stride H*W).
template <typename T>
struct WaveBuffers {
  T* prev = nullptr;
  T* now = nullptr;
  const T* b = nullptr;
  const T* negd = nullptr;
  const T* force = nullptr;
  const T* a_f = nullptr;
  int64_t s_b = 0, s_negd = 0, s_force = 0, s_a_f = 0;
};

template <typename T>
struct WaveStepData : WaveBuffers<T> {
  const T* a_k = nullptr;
  int64_t s_a_k = 0;
};

}  // namespace leanconv

namespace leanconv {

// The fourth-order scheme (leanconv.wave.fd4): for B independent H x W fields u,
//
//   v    = cc * (wx * Dxx(u) + wy * Dyy(u))
//   next = 2 u - prev + s2 * v + s4 * cc * (wx * Dxx(v) + wy * Dyy(v)) + a_f * force
//
// or, damped (absorbing sides, sponge: b = 2 / (1 + gamma), negd = -(1 - gamma) / (1 + gamma)),
//
//   next = b * (u + (s2 * v + s4 * cc * (wx * Dxx(v) + wy * Dyy(v))) / 2) + negd * prev + a_f * force
//
// with Dxx u_j = -u_{j-2} + 16 u_{j-1} - 30 u_j + 16 u_{j+1} - u_{j+2} (along W; Dyy
// along H) on fields extended by two mirrored ghost nodes per side: the image of
// node k across a side is sign * u_k, sign +1 (reflecting) or -1 (Dirichlet).
// `next` overwrites `prev`; with several steps the two buffers swap roles.
struct WaveFd4Params : WaveFields {
  double wx = 0, wy = 0, s2 = 0, s4 = 0;
  double sign_left = 1, sign_right = 1, sign_bottom = 1, sign_top = 1;
};

template <typename T>
struct WaveFd4Data : WaveBuffers<T> {
  const T* cc = nullptr;
  int64_t s_cc = 0;  // per-item stride (0: shared by the batch)
};

}  // namespace leanconv
