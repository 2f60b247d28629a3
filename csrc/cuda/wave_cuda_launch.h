// Launcher of the CUDA wave_step_ kernel, shared by the glue (wave_cuda.cpp)
// and the kernel (wave_cuda.cu).  No torch header: the kernel file stays
// quick to compile.
#pragma once

#include <cuda_runtime_api.h>

#include "ops/wave_params.h"

namespace leanconv::cuda_wave {

// One step of every field (see ops/wave_params.h): `out` holds the previous
// field and is overwritten with the next one, `u` is the current field.
// T = float or double; every pointer is contiguous on the current device.
// Runs on `stream` and checks the launch.
template <typename T>
void launch_wave_step(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out,
                      cudaStream_t stream);

}  // namespace leanconv::cuda_wave
