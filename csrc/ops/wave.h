// Argument checks of the wave_step_ op, shared by the CPU and CUDA code.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "ops/wave_params.h"

namespace leanconv {

// Checks shapes, dtypes, devices and layouts and fills the params.
WaveStepParams wave_step_params(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& a_k,
                                const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                                const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f,
                                double k0, double k1, double k2, int64_t steps);

// Fills the pointers (after wave_step_params accepted the tensors).
template <typename T>
WaveStepData<T> wave_step_data(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& a_k,
                               const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                               const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f) {
  WaveStepData<T> d;
  const int64_t plane = prev.size(1) * prev.size(2);
  auto coef = [&](const std::optional<at::Tensor>& t, const T*& ptr, int64_t& stride) {
    if (t.has_value() && t->defined()) {
      ptr = t->const_data_ptr<T>();
      stride = t->size(0) == 1 ? 0 : plane;
    }
  };
  d.prev = prev.mutable_data_ptr<T>();
  d.now = now.mutable_data_ptr<T>();
  coef(a_k, d.a_k, d.s_a_k);
  coef(b, d.b, d.s_b);
  coef(negd, d.negd, d.s_negd);
  coef(force, d.force, d.s_force);
  coef(a_f, d.a_f, d.s_a_f);
  return d;
}

// The fourth-order step (wave_fd4_step_): checks and params; `constants` = (wx, wy, s2, s4),
// `signs` = the images' signs on the (left, right, bottom, top) sides, each +1 or -1.
WaveFd4Params wave_fd4_params(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& cc,
                              c10::ArrayRef<double> constants, c10::ArrayRef<double> signs, int64_t steps,
                              const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f,
                              const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd);

template <typename T>
WaveFd4Data<T> wave_fd4_data(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& cc,
                             const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f,
                             const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd) {
  WaveFd4Data<T> d;
  const int64_t plane = prev.size(1) * prev.size(2);
  d.prev = prev.mutable_data_ptr<T>();
  d.now = now.mutable_data_ptr<T>();
  d.cc = cc.const_data_ptr<T>();
  d.s_cc = cc.size(0) == 1 ? 0 : plane;
  if (force.has_value() && force->defined()) {
    d.force = force->const_data_ptr<T>();
    d.s_force = force->size(0) == 1 ? 0 : plane;
    d.a_f = a_f->const_data_ptr<T>();
    d.s_a_f = a_f->size(0) == 1 ? 0 : plane;
  }
  if (b.has_value() && b->defined()) {
    d.b = b->const_data_ptr<T>();
    d.s_b = b->size(0) == 1 ? 0 : plane;
    d.negd = negd->const_data_ptr<T>();
    d.s_negd = negd->size(0) == 1 ? 0 : plane;
  }
  return d;
}

}  // namespace leanconv
