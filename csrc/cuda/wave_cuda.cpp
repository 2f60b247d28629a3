// CUDA implementation of wave_step_: checks, dtype dispatch and the loop over
// steps (one launch per step, the two buffers swapping roles).  The kernel is
// in wave_cuda.cu, declared in wave_cuda_launch.h.  This file holds no device
// code: it is plain C++ (compiled only in CUDA builds), so the torch headers
// are parsed once by the C++ compiler instead of once per GPU arch by nvcc.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <utility>

#include "cuda/wave_cuda_launch.h"
#include "ops/glue.h"
#include "ops/wave.h"

namespace leanconv {

namespace {

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
      cuda_wave::launch_wave_step<scalar_t>(p, d, cur, old, stream);
      std::swap(cur, old);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) { m.impl("wave_step_", &wave_step_cuda); }

}  // namespace leanconv
