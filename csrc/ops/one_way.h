// Argument checking and shape arithmetic of the one-way filter chain ops
// (the spatial part of a CP / one-way factorized convolution), shared by the
// CPU and CUDA implementations.
//
// The chain runs on the R "rank" channels of a factorized convolution: every
// channel c is filtered along W by filter_w[c], then along H by filter_h[c],
// then (3-D) along D by filter_d[c], and multiplied by scale[c].  Stride,
// padding and dilation are per axis, so the result equals a depthwise
// convolution whose kernel is the outer product of the 1-D filters.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <optional>
#include <tuple>

#include "ops/conv_geometry.h"

namespace leanconv {

// Checks the forward arguments and fills the geometry (ConvGeometry, with
// kernel[a] = the length of the filter along axis a).
ConvGeometry one_way_forward_params(const at::Tensor& input,
                                    const std::optional<at::Tensor>& filter_d,
                                    const at::Tensor& filter_h, const at::Tensor& filter_w,
                                    const std::optional<at::Tensor>& scale,
                                    c10::IntArrayRef stride, c10::IntArrayRef padding,
                                    c10::IntArrayRef dilation);

// Checks the backward arguments: the forward ones plus grad_output of the
// forward output's shape.
ConvGeometry one_way_backward_params(const at::Tensor& grad_output, const at::Tensor& input,
                                     const std::optional<at::Tensor>& filter_d,
                                     const at::Tensor& filter_h, const at::Tensor& filter_w,
                                     const std::optional<at::Tensor>& scale,
                                     c10::IntArrayRef stride, c10::IntArrayRef padding,
                                     c10::IntArrayRef dilation);

// ---- helpers shared by the CPU and CUDA glue

// t planar (contiguous) in the dtype the kernels compute in (float for half
// types); undefined for an absent optional.
at::Tensor one_way_compute(const at::Tensor& t);
at::Tensor one_way_compute(const std::optional<at::Tensor>& t);

// The forward result: y converted back to the input's dtype and memory
// format (channels_last inputs give channels_last outputs).
at::Tensor one_way_finish(const at::Tensor& y, const at::Tensor& input);

// What the kernels read: every tensor argument through one_way_compute (gy only in
// the backward op; fd and sc undefined when filter_d / scale are absent).
struct OneWayOperands {
  at::Tensor x, gy, fd, fh, fw, sc;
};
OneWayOperands one_way_operands(const at::Tensor& input, const std::optional<at::Tensor>& filter_d,
                                const at::Tensor& filter_h, const at::Tensor& filter_w,
                                const std::optional<at::Tensor>& scale,
                                const at::Tensor& grad_output = at::Tensor());

template <typename T>
const T* one_way_ptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

// The backward op's five results from gx (planar, compute dtype; undefined
// when not asked) and gf, the filter gradients as (C, kD + kH + kW + 1)
// (undefined when not asked); absent ones are fresh empty (0,) tensors.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> one_way_backward_results(
    const ConvGeometry& p, const at::Tensor& input, const at::Tensor& gx, const at::Tensor& gf,
    bool has_d, bool has_scale);

}  // namespace leanconv
