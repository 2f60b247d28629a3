// Argument checking and shape arithmetic of the depthwise convolution ops,
// shared by the CPU and CUDA implementations.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <optional>
#include <vector>

#include "ops/conv_geometry.h"

namespace leanconv {

// Checks the geometry lists (stride, dilation: length 1 or dims; padding:
// 1, dims, or 2*dims values given as (before, after) pairs per axis in D, H,
// W order) and that the kernel fits the padded input along every axis, and
// fills the geometry for an input of `input_size` (N, C, spatial...) and a
// kernel of `kernel_size` (spatial sizes only).  Shared with the one-way
// filter ops.
ConvGeometry conv_geometry(int dims, c10::IntArrayRef input_size, c10::IntArrayRef kernel_size,
                           c10::IntArrayRef stride, c10::IntArrayRef padding,
                           c10::IntArrayRef dilation);

// The last `dims` values of a (D, H, W) array of the geometry.
std::vector<int64_t> spatial(const int64_t (&v)[3], int dims);

// Checks forward arguments and fills the geometry.
ConvGeometry depthwise_forward_params(const at::Tensor& input, const at::Tensor& weight,
                                      const std::optional<at::Tensor>& bias,
                                      c10::IntArrayRef stride, c10::IntArrayRef padding,
                                      c10::IntArrayRef dilation);

// Checks the arguments of depthwise_conv_backward_input (grad_output against
// input_size and the weight's kernel size, the weight's shape (C, 1, k...)
// and dtype) and fills the geometry.  The backends check the devices.
ConvGeometry depthwise_backward_input_params(const at::Tensor& grad_output,
                                             const at::Tensor& weight,
                                             c10::IntArrayRef input_size,
                                             c10::IntArrayRef stride, c10::IntArrayRef padding,
                                             c10::IntArrayRef dilation);

// Checks the arguments of depthwise_conv_backward_weight (input's dtype and
// device against grad_output's, grad_output against input's size and
// kernel_size) and fills the geometry.
ConvGeometry depthwise_backward_weight_params(const at::Tensor& grad_output,
                                              const at::Tensor& input,
                                              c10::IntArrayRef kernel_size,
                                              c10::IntArrayRef stride, c10::IntArrayRef padding,
                                              c10::IntArrayRef dilation);

// The output shape for a geometry: (N, C, [D,] H, W), and the weight's (C, 1, k...).
std::vector<int64_t> depthwise_output_shape(const ConvGeometry& p);
std::vector<int64_t> depthwise_weight_shape(const ConvGeometry& p);

}  // namespace leanconv
