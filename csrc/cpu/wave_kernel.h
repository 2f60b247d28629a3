// CPU wave-step kernels (bodies in wave_kernel.cpp, compiled once per ISA
// variant).  See ops/wave_params.h for the arithmetic.
#pragma once

#include <cstdint>

#include "cpu/isa.h"
#include "ops/wave_params.h"

#define LEANCONV_WAVE_CPU_KERNELS(T)                                                                   \
  /* `steps` steps of the batch items [begin, end), each item on its own (buffers swap per step). */ \
  void wave_steps_items(const ::leanconv::WaveStepParams& p, const ::leanconv::WaveStepData<T>& d,     \
                        int64_t steps, int64_t begin, int64_t end);                                   \
  /* One step of the rows [begin, end) of the batch flattened to (B*H) rows: reads the current      */ \
  /* fields `u`, overwrites `out` (the previous fields); both are whole (B, H, W) buffers.          */ \
  void wave_step_rows(const ::leanconv::WaveStepParams& p, const ::leanconv::WaveStepData<T>& d,       \
                      const T* u, T* out, int64_t begin, int64_t end);

LEANCONV_DECLARE_FOR_ISAS(LEANCONV_WAVE_CPU_KERNELS(float) LEANCONV_WAVE_CPU_KERNELS(double))

// The fourth-order scheme (wave_fd4_kernel.cpp): `steps` steps of the batch items [begin, end),
// each item on its own with a scratch field of its own (buffers swap per step).
#define LEANCONV_WAVE_FD4_CPU_KERNELS(T)                                                              \
  void wave_fd4_items(const ::leanconv::WaveFd4Params& p, const ::leanconv::WaveFd4Data<T>& d,        \
                      int64_t steps, int64_t begin, int64_t end);

LEANCONV_DECLARE_FOR_ISAS(LEANCONV_WAVE_FD4_CPU_KERNELS(float) LEANCONV_WAVE_FD4_CPU_KERNELS(double))
