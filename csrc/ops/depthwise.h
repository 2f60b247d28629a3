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

// Checks the arguments of depthwise_conv_backward_input (grad_output against
// input_size and the weight's kernel size, the weight's shape (C, 1, k...)
// and dtype) and fills the params.  The backends check the devices.
DepthwiseParams depthwise_backward_input_params(const at::Tensor& grad_output,
                                                const at::Tensor& weight,
                                                c10::IntArrayRef input_size,
                                                c10::IntArrayRef stride, c10::IntArrayRef padding,
                                                c10::IntArrayRef dilation);

// Checks the arguments of depthwise_conv_backward_weight (input's dtype and
// device against grad_output's, grad_output against input's size and
// kernel_size) and fills the params.
DepthwiseParams depthwise_backward_weight_params(const at::Tensor& grad_output,
                                                 const at::Tensor& input,
                                                 c10::IntArrayRef kernel_size,
                                                 c10::IntArrayRef stride, c10::IntArrayRef padding,
                                                 c10::IntArrayRef dilation);

// Checks that the kernel fits the padded input along every axis and fills
// the params for an input of `input_size` (N, C, spatial...) and a kernel of
// `kernel_size` (spatial sizes only).  Shared with the one-way filter ops.
DepthwiseParams depthwise_params(int dims, c10::IntArrayRef input_size,
                                 c10::IntArrayRef kernel_size, const DepthwiseGeometry& g);

// The output shape for params: (N, C, [D,] H, W), and the weight's (C, 1, k...).
std::vector<int64_t> depthwise_output_shape(const DepthwiseParams& p);
std::vector<int64_t> depthwise_weight_shape(const DepthwiseParams& p);

}  // namespace leanconv
