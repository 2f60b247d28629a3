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

// A coefficient array's pointer and per-item stride (0 when it has batch 1);
// nothing when the optional argument is absent.
template <typename T>
void wave_coefficient(const std::optional<at::Tensor>& t, const T*& ptr, int64_t& stride) {
  if (t.has_value() && t->defined()) {
    ptr = t->const_data_ptr<T>();
    stride = t->size(0) == 1 ? 0 : t->size(1) * t->size(2);
  }
}

// The pointers both ops share (after their checks accepted the tensors).
template <typename T>
void wave_buffers(WaveBuffers<T>& d, const at::Tensor& prev, const at::Tensor& now,
                  const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                  const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f) {
  d.prev = prev.mutable_data_ptr<T>();
  d.now = now.mutable_data_ptr<T>();
  wave_coefficient(b, d.b, d.s_b);
  wave_coefficient(negd, d.negd, d.s_negd);
  wave_coefficient(force, d.force, d.s_force);
  wave_coefficient(a_f, d.a_f, d.s_a_f);
}

// Fills the pointers (after wave_step_params accepted the tensors).
template <typename T>
WaveStepData<T> wave_step_data(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& a_k,
                               const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                               const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f) {
  WaveStepData<T> d;
  wave_buffers<T>(d, prev, now, b, negd, force, a_f);
  wave_coefficient<T>(a_k, d.a_k, d.s_a_k);
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
  wave_buffers<T>(d, prev, now, b, negd, force, a_f);
  wave_coefficient<T>(cc, d.cc, d.s_cc);
  return d;
}

}  // namespace leanconv
