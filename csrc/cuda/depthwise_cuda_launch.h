// Launchers of the CUDA depthwise kernels, called by the glue in
// depthwise_cuda.cpp.  No torch header: the kernel files that define these
// (depthwise_cuda_<dtype>.cu) stay quick to compile.
//
// T is float, double, __half or __nv_bfloat16.  Every pointer is a contiguous
// NC(D)HW tensor (weights (C, 1, kD, kH, kW)) on the current device, and every
// launcher runs on `stream` and checks the launch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "cuda/depthwise_cuda_generic.h"
#include "cuda/depthwise_cuda_plan.h"

namespace leanconv::cuda_dw {

// y = depthwise(x, w) + bias (bias may be null), tiled kernel planned by
// plan_forward_fast (T != double).
template <typename T>
void launch_forward_fast(const FwdFast& plan, const T* x, const T* w, const T* bias, T* y,
                         cudaStream_t stream);

// y = depthwise(x, w) + bias, any geometry, one thread per output.
template <typename T>
void launch_forward_direct(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y,
                           cudaStream_t stream);

// gx = grad_input(gy, w), any geometry, one thread per input element.
template <typename T>
void launch_backward_input_gather(const ConvGeometry& g, const T* gy, const T* w, T* gx, cudaStream_t stream);

// partial (C, S, taps) float, from the tiled weight-gradient kernel planned by
// plan_wgrad_fast (T != double).
template <typename T>
void launch_wgrad_fast(const WgFast& plan, const T* gy, const T* x, float* partial, cudaStream_t stream);

// partial (C, S, taps) in Acc (double for double, else float), any geometry.
template <typename T, typename Acc>
void launch_wgrad_generic(const WgGeneric& plan, const T* gy, const T* x, Acc* partial,
                          cudaStream_t stream);

// gw[c, tap] = sum_s partial[c, s, tap], in a fixed order.
template <typename T, typename Acc>
void launch_reduce_partials(const Acc* partial, T* gw, int64_t C, int64_t S, int64_t taps,
                            cudaStream_t stream);

}  // namespace leanconv::cuda_dw
