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

}  // namespace leanconv
