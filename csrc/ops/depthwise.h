// Argument checking and shape arithmetic of the depthwise convolution ops,
// shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <optional>
#include <vector>

#include "ops/depthwise_params.h"

namespace leanconv {

// Normalized stride / padding / dilation of a call.  `pad_lo`/`pad_hi` hold the
// padding before and after each spatial axis.
struct DepthwiseGeometry {
  int dims = 2;
  std::vector<int64_t> stride, pad_lo, pad_hi, dilation;
};

// Checks the geometry lists (length 1, dims, or 2*dims for padding given as
// (before, after) pairs per axis in D, H, W order) and expands them.
DepthwiseGeometry depthwise_geometry(int dims, c10::IntArrayRef stride, c10::IntArrayRef padding,
                                     c10::IntArrayRef dilation);

// Checks forward arguments and fills the params (not channels_last, which the
// backend sets from the layout it chooses).
DepthwiseParams depthwise_forward_params(const at::Tensor& input, const at::Tensor& weight,
                                         const std::optional<at::Tensor>& bias,
                                         c10::IntArrayRef stride, c10::IntArrayRef padding,
                                         c10::IntArrayRef dilation);

// Checks backward arguments (grad_output against the given input size and
// kernel size) and fills the params.
DepthwiseParams depthwise_backward_params(const at::Tensor& grad_output,
                                          c10::IntArrayRef input_size,
                                          c10::IntArrayRef kernel_size,
                                          c10::IntArrayRef stride, c10::IntArrayRef padding,
                                          c10::IntArrayRef dilation);

// Checks that the kernel fits the padded input along every axis and fills
// the params for an input of `input_size` (N, C, spatial...) and a kernel of
// `kernel_size` (spatial sizes only).  Shared with the one-way filter ops.
DepthwiseParams depthwise_params(int dims, c10::IntArrayRef input_size,
                                 c10::IntArrayRef kernel_size, const DepthwiseGeometry& g);

// True when the tensor's strides are those of channels_last (2-D) or
// channels_last_3d (3-D) and not also plain contiguous.
bool prefers_channels_last(const at::Tensor& t);

// The output shape for params: (N, C, [D,] H, W).
std::vector<int64_t> depthwise_output_shape(const DepthwiseParams& p);
std::vector<int64_t> depthwise_input_shape(const DepthwiseParams& p);
std::vector<int64_t> depthwise_weight_shape(const DepthwiseParams& p);

}  // namespace leanconv
