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

struct WaveStepParams {
  int64_t batch = 0;
  int64_t height = 0;  // H (rows)
  int64_t width = 0;   // W (columns, contiguous)
  double k0 = 0, k1 = 0, k2 = 0;
  bool rect = false;    // k1 != 0
  bool damped = false;  // b / negd given
  bool forced = false;  // force / a_f given (one step only)
  int64_t plane() const { return height * width; }
};

// Pointers of one call.  Coefficient arrays have batch 1 (shared, stride 0)
// or B (stride H*W).
template <typename T>
struct WaveStepData {
  T* prev = nullptr;
  T* now = nullptr;
  const T* a_k = nullptr;
  const T* b = nullptr;
  const T* negd = nullptr;
  const T* force = nullptr;
  const T* a_f = nullptr;
  int64_t s_a_k = 0, s_b = 0, s_negd = 0, s_force = 0, s_a_f = 0;
};

}  // namespace leanconv
