// Schemas and checks of the wave_step_ and wave_fd4_step_ ops.
#include "ops/wave.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "ops/glue.h"

namespace leanconv {

namespace {

void check_coefficient(const at::Tensor& t, const char* name, const at::Tensor& state) {
  TORCH_CHECK(t.dim() == 3 && (t.size(0) == 1 || t.size(0) == state.size(0)) &&
                  t.size(1) == state.size(1) && t.size(2) == state.size(2),
              name, " must have shape (1, H, W) or (B, H, W) with (B, H, W) = ", state.sizes(), ", got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == state.scalar_type(), name, " must have the dtype of prev (",
              state.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == state.device(), name, " must be on ", state.device(), ", got ", t.device());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// The two state buffers of both wave-step ops.
void check_states(const at::Tensor& prev, const at::Tensor& now, int64_t steps) {
  TORCH_CHECK(prev.dim() == 3 && prev.size(1) >= 3 && prev.size(2) >= 3,
              "prev must have shape (B, H, W) with H, W >= 3, got ", prev.sizes());
  TORCH_CHECK(now.sizes() == prev.sizes(), "now must have the shape of prev ", prev.sizes(), ", got ",
              now.sizes());
  TORCH_CHECK(prev.scalar_type() == at::kFloat || prev.scalar_type() == at::kDouble,
              "prev must be float32 or float64, got ", prev.scalar_type());
  TORCH_CHECK(now.scalar_type() == prev.scalar_type(), "now must have the dtype of prev (",
              prev.scalar_type(), "), got ", now.scalar_type());
  TORCH_CHECK(now.device() == prev.device(), "now must be on ", prev.device(), ", got ", now.device());
  TORCH_CHECK(prev.is_contiguous() && now.is_contiguous(), "prev and now must be contiguous");
  TORCH_CHECK(prev.data_ptr() != now.data_ptr() || prev.numel() == 0, "prev and now must be different buffers");
  TORCH_CHECK(steps >= 0, "steps must be >= 0, got ", steps);
}

// The optional damping of both wave-step ops: b with negd.
void check_damping(const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                   const at::Tensor& prev) {
  TORCH_CHECK(given(b) == given(negd), "b and negd must be given together (a damped step) or not at all");
  if (given(b)) {
    check_coefficient(*b, "b", prev);
    check_coefficient(*negd, "negd", prev);
  }
}

// The optional load of both wave-step ops: force with its coefficient a_f, for one step.
void check_force(const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f, int64_t steps,
                 const at::Tensor& prev) {
  TORCH_CHECK(given(force) == given(a_f), "force and a_f must be given together or not at all");
  if (given(force)) {
    TORCH_CHECK(steps == 1, "force applies to one step: steps must be 1 when force is given, got ", steps);
    check_coefficient(*force, "force", prev);
    check_coefficient(*a_f, "a_f", prev);
  }
}

// What both ops check last (damping, load) and the fields they describe.
WaveFields wave_fields(const at::Tensor& prev, const std::optional<at::Tensor>& b,
                       const std::optional<at::Tensor>& negd, const std::optional<at::Tensor>& force,
                       const std::optional<at::Tensor>& a_f, int64_t steps) {
  check_damping(b, negd, prev);
  check_force(force, a_f, steps, prev);
  WaveFields f;
  f.batch = prev.size(0);
  f.height = prev.size(1);
  f.width = prev.size(2);
  f.damped = given(b);
  f.forced = given(force);
  return f;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  // Explicit wave-equation steps in place (see ops/wave_params.h): `steps`
  // central-difference steps of B mirrored H x W fields; the buffers prev and
  // now swap roles after every step, so the newest field ends in prev when
  // steps is odd and in now when it is even.
  m.def("wave_step_(Tensor(a!) prev, Tensor(b!) now, Tensor a_k, Tensor? b, Tensor? negd, Tensor? force, "
        "Tensor? a_f, float k0, float k1, float k2, int steps) -> ()");
  // The fourth-order scheme's steps in place (ops/wave_params.h, WaveFd4Params): cc = c^2
  // (1 or B, H, W); constants = (wx, wy, s2, s4); signs of the mirrored images on the
  // (left, right, bottom, top) sides; b with negd for a damped step.  Buffers swap as for wave_step_.
  m.def("wave_fd4_step_(Tensor(a!) prev, Tensor(b!) now, Tensor cc, float[] constants, float[] signs, "
        "int steps, Tensor? force=None, Tensor? a_f=None, Tensor? b=None, Tensor? negd=None) -> ()");
}

WaveStepParams wave_step_params(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& a_k,
                                const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                                const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f,
                                double k0, double k1, double k2, int64_t steps) {
  check_states(prev, now, steps);
  TORCH_CHECK(std::isfinite(k0) && std::isfinite(k1) && std::isfinite(k2), "k0, k1, k2 must be finite");
  check_coefficient(a_k, "a_k", prev);
  WaveStepParams p{wave_fields(prev, b, negd, force, a_f, steps)};
  p.k0 = k0;
  p.k1 = k1;
  p.k2 = k2;
  p.rect = k1 != 0.0;
  return p;
}

WaveFd4Params wave_fd4_params(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& cc,
                              c10::ArrayRef<double> constants, c10::ArrayRef<double> signs, int64_t steps,
                              const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f,
                              const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd) {
  check_states(prev, now, steps);
  TORCH_CHECK(constants.size() == 4, "constants must be (wx, wy, s2, s4), got ", constants.size(), " values");
  for (double c : constants) TORCH_CHECK(std::isfinite(c), "constants must be finite, got ", constants);
  TORCH_CHECK(signs.size() == 4, "signs must give the (left, right, bottom, top) sides, got ", signs.size(),
              " values");
  for (double s : signs) TORCH_CHECK(s == 1.0 || s == -1.0, "signs must be +1 or -1, got ", signs);
  check_coefficient(cc, "cc", prev);
  WaveFd4Params p{wave_fields(prev, b, negd, force, a_f, steps)};
  p.wx = constants[0], p.wy = constants[1], p.s2 = constants[2], p.s4 = constants[3];
  p.sign_left = signs[0], p.sign_right = signs[1], p.sign_bottom = signs[2], p.sign_top = signs[3];
  return p;
}

}  // namespace leanconv
