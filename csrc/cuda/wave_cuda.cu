// CUDA kernel of wave_step_ (see ops/wave_params.h for the arithmetic) and
// its launcher: one thread per node and one launch per step; the 3x3
// neighbourhood is read through the caches.  Float and double.  The glue
// (checks, dtype, the loop over steps) is wave_cuda.cpp.
#include <c10/cuda/CUDAException.h>

#include <algorithm>

#include "cuda/wave_cuda_launch.h"

namespace leanconv::cuda_wave {

namespace {

__device__ __forceinline__ int64_t mirror(int64_t i, int64_t n) { return i < 0 ? 1 : (i >= n ? n - 2 : i); }

template <typename T, bool RECT, bool DAMPED, bool FORCED>
__global__ void wave_step_kernel(WaveStepParams p, WaveStepData<T> d, const T* __restrict__ u,
                                 T* __restrict__ out) {
  const int64_t plane = p.height * p.width;
  const int64_t total = p.batch * plane;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t item = idx / plane, rem = idx % plane;
    const int64_t i = rem / p.width, j = rem % p.width;
    const T* f = u + item * plane;
    const int64_t iu = mirror(i - 1, p.height) * p.width, ic = i * p.width, id = mirror(i + 1, p.height) * p.width;
    const int64_t jl = mirror(j - 1, p.width), jr = mirror(j + 1, p.width);
    const T c = f[ic + j];
    const T cy = f[iu + j] + c + f[id + j];
    const T rx = f[ic + jl] + c + f[ic + jr];
    const T box = cy + (rx - c) + (f[iu + jl] + f[iu + jr]) + (f[id + jl] + f[id + jr]);
    T s = static_cast<T>(p.k0) * c - static_cast<T>(p.k2) * box;
    if constexpr (RECT) s += static_cast<T>(p.k1) * (cy - rx);
    T v;
    if constexpr (DAMPED) {
      v = d.negd[item * d.s_negd + rem] * out[idx] + d.b[item * d.s_b + rem] * c;
    } else {
      v = T(2) * c - out[idx];
    }
    v -= d.a_k[item * d.s_a_k + rem] * s;
    if constexpr (FORCED) v += d.a_f[item * d.s_a_f + rem] * d.force[item * d.s_force + rem];
    out[idx] = v;
  }
}

}  // namespace

template <typename T>
void launch_wave_step(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out,
                      cudaStream_t stream) {
  const int64_t total = p.batch * p.plane();
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535LL * 32);
  const int key = (p.rect ? 4 : 0) | (p.damped ? 2 : 0) | (p.forced ? 1 : 0);
#define LEANCONV_WAVE_LAUNCH(R, D, F) \
  wave_step_kernel<T, R, D, F><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(p, d, u, out)
  switch (key) {
    case 0: LEANCONV_WAVE_LAUNCH(false, false, false); break;
    case 1: LEANCONV_WAVE_LAUNCH(false, false, true); break;
    case 2: LEANCONV_WAVE_LAUNCH(false, true, false); break;
    case 3: LEANCONV_WAVE_LAUNCH(false, true, true); break;
    case 4: LEANCONV_WAVE_LAUNCH(true, false, false); break;
    case 5: LEANCONV_WAVE_LAUNCH(true, false, true); break;
    case 6: LEANCONV_WAVE_LAUNCH(true, true, false); break;
    default: LEANCONV_WAVE_LAUNCH(true, true, true); break;
  }
#undef LEANCONV_WAVE_LAUNCH
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_wave_step<float>(const WaveStepParams&, const WaveStepData<float>&, const float*,
                                      float*, cudaStream_t);
template void launch_wave_step<double>(const WaveStepParams&, const WaveStepData<double>&, const double*,
                                       double*, cudaStream_t);

}  // namespace leanconv::cuda_wave
