// CPU depthwise convolution kernels (bodies in depthwise_kernel.cpp, compiled
// once per ISA variant).  Every function works on a range [begin, end) of
// independent work items so the caller can spread them over threads.
//
// Planar layout: x is (N*C, D, H, W), weight (C, kD, kH, kW), y (N*C, oD, oH, oW),
// all contiguous; an item is one (n, c) plane.
#pragma once

#include <cstdint>

#include "cpu/isa.h"
#include "ops/depthwise_params.h"

#define LEANCONV_DEPTHWISE_CPU_KERNELS(T)                                                     \
  /* y = depthwise(x, w) + bias (bias may be null); items: planes. */                          \
  void depthwise_forward_planar(const ::leanconv::DepthwiseParams& p, const T* x, const T* w, \
                                const T* bias, T* y, int64_t begin, int64_t end);             \
  /* grad_input for any stride, by scattering each output gradient; items: planes. */        \
  void depthwise_backward_input_planar_scatter(const ::leanconv::DepthwiseParams& p,           \
                                               const T* gy, const T* w, T* gx, int64_t begin,  \
                                               int64_t end);                                   \
  /* grad_weight partial sums: gw_partial[c] += sum over the planes (n, c) in [begin, end)  */ \
  /* of x (*) gy; gw_partial is (C, kD, kH, kW) and is accumulated into, not cleared. */      \
  void depthwise_backward_weight_planar(const ::leanconv::DepthwiseParams& p, const T* x,     \
                                        const T* gy, T* gw_partial, int64_t begin, int64_t end);

LEANCONV_DECLARE_FOR_ISAS(LEANCONV_DEPTHWISE_CPU_KERNELS(float) LEANCONV_DEPTHWISE_CPU_KERNELS(double))
