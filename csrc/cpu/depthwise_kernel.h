// CPU depthwise convolution kernels (bodies in depthwise_kernel.cpp, compiled
// once per ISA variant).
//
// The kernels compute on channel blocks: a block of `lanes` channels (one SIMD
// vector) of one image is copied into a zero-padded tile laid out (D, H, W,
// lanes), so every tap of every output is one vector FMA and the inner loops
// have no boundary tests.  (Small kernels on channels_last float tensors skip
// the tile and read the input in place; so do 3x3, 5x5 and 7x7 on NCHW float
// tensors, one channel plane at a time with vectors along W.)  Tensors are read and written
// through their strides (NCHW, channels_last or any other), in their own
// dtype (float, double, or bfloat16 computed in float); nothing is copied up
// front.
//
// Work is cut into items (image, band of output rows, group of channel
// blocks) that the caller spreads over threads: every function takes a range
// [begin, end) of items of the plan made by depthwise_plan.
#pragma once

#include <cstdint>

#include "cpu/isa.h"
#include "ops/conv_geometry.h"

namespace leanconv::cpu {

// bfloat16 storage (the upper half of a float32).
struct bf16 {
  uint16_t bits;
};

enum class DwOp : int { forward = 0, backward_input = 1, backward_weight = 2 };

// A strided view of an (N, C, D, H, W) tensor (a 4-D tensor has D = 1 and any
// D stride); strides in elements.
struct DwView {
  void* data = nullptr;
  int64_t stride[5] = {0, 0, 0, 0, 0};
};

// How one op is cut into items: item = (image, band, group of channel
// blocks), in that order of significance.
struct DwPlan {
  int64_t lanes = 1;           // channels per block
  int64_t channel_blocks = 0;  // ceil(C / lanes)
  int64_t group = 1;           // channel blocks per item
  int64_t batch = 0;
  int64_t bands = 1;           // bands of output rows per image
  int64_t band_len = 1;        // output rows (2-D) or slices (3-D) per band
  int64_t groups() const { return (channel_blocks + group - 1) / group; }
  int64_t items() const { return groups() * batch * bands; }
};

}  // namespace leanconv::cpu

// Every kernel is a template over the storage type S of the tensors: float,
// double or bf16 (bfloat16, computed in float); the glue picks S with
// AT_DISPATCH, like every other entry point.
#define LEANCONV_DEPTHWISE_CPU_KERNELS                                                          \
  /* The item decomposition of `op` for `threads` threads; channels_inner: the source has */  \
  /* channel stride 1 (channels_last). */                                                       \
  template <typename S>                                                                         \
  ::leanconv::cpu::DwPlan depthwise_plan(const ::leanconv::ConvGeometry& p,                     \
                                         ::leanconv::cpu::DwOp op, int threads,                 \
                                         bool channels_inner);                                  \
  /* y = depthwise(x, w) + bias.  w: contiguous (C, k...) and bias (C) or null, both in the */  \
  /* compute type (float for bfloat16). */                                                      \
  template <typename S>                                                                         \
  void depthwise_forward(const ::leanconv::ConvGeometry& p, const ::leanconv::cpu::DwPlan& plan, \
                         ::leanconv::cpu::DwView x, const void* w, const void* bias,            \
                         ::leanconv::cpu::DwView y, int64_t begin, int64_t end);                \
  /* gx = grad_input(gy, w), any stride. */                                                     \
  template <typename S>                                                                         \
  void depthwise_backward_input(const ::leanconv::ConvGeometry& p,                              \
                                const ::leanconv::cpu::DwPlan& plan, ::leanconv::cpu::DwView gy, \
                                const void* w, ::leanconv::cpu::DwView gx, int64_t begin,       \
                                int64_t end);                                                   \
  /* gw_partial (C, k...) in the compute type += the weight gradient of the items; it is */    \
  /* accumulated into, not cleared (one buffer per thread, summed by the caller). */           \
  template <typename S>                                                                         \
  void depthwise_backward_weight(const ::leanconv::ConvGeometry& p,                             \
                                 const ::leanconv::cpu::DwPlan& plan, ::leanconv::cpu::DwView x, \
                                 ::leanconv::cpu::DwView gy, void* gw_partial, int64_t begin,   \
                                 int64_t end);

LEANCONV_DECLARE_FOR_ISAS(LEANCONV_DEPTHWISE_CPU_KERNELS)
