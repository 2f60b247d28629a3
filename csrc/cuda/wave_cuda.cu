// CUDA implementation of wave_step_ (see ops/wave_params.h for the
// arithmetic): one thread per node and one launch per step; the 3x3
// neighbourhood is read through the caches.  Float and double.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <utility>

#include "ops/glue.h"
#include "ops/wave.h"

namespace leanconv {

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

template <typename T>
void launch(const WaveStepParams& p, const WaveStepData<T>& d, const T* u, T* out, cudaStream_t stream) {
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

void wave_step_cuda(const at::Tensor& prev, const at::Tensor& now, const at::Tensor& a_k,
                    const std::optional<at::Tensor>& b, const std::optional<at::Tensor>& negd,
                    const std::optional<at::Tensor>& force, const std::optional<at::Tensor>& a_f, double k0,
                    double k1, double k2, int64_t steps) {
  const WaveStepParams p = wave_step_params(prev, now, a_k, b, negd, force, a_f, k0, k1, k2, steps);
  check_device(prev, "prev", at::kCUDA);
  if (steps == 0 || p.batch == 0) return;
  const c10::cuda::CUDAGuard guard(prev.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(prev.scalar_type(), "leanconv::wave_step_ (cuda)", [&] {
    const WaveStepData<scalar_t> d = wave_step_data<scalar_t>(prev, now, a_k, b, negd, force, a_f);
    scalar_t* cur = d.now;
    scalar_t* old = d.prev;
    for (int64_t s = 0; s < steps; ++s) {
      launch<scalar_t>(p, d, cur, old, stream);
      std::swap(cur, old);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) { m.impl("wave_step_", &wave_step_cuda); }

}  // namespace leanconv
