// Schemas, checks and shape arithmetic of the depthwise convolution ops.
#include "ops/depthwise.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "ops/glue.h"

namespace leanconv {

namespace {

const char* kAxisNames3[] = {"D", "H", "W"};

const char* axis_name(int dims, int axis) { return kAxisNames3[axis + (3 - dims)]; }

std::vector<int64_t> expand(const char* name, c10::IntArrayRef v, int dims) {
  TORCH_CHECK(v.size() == 1 || static_cast<int>(v.size()) == dims, name,
              " must have 1 or ", dims, " values (one per spatial axis), got ", v);
  std::vector<int64_t> out(dims);
  for (int i = 0; i < dims; ++i) out[i] = v.size() == 1 ? v[0] : v[i];
  return out;
}

void check_input_dims(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4 || t.dim() == 5, name,
              " must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got shape ", t.sizes());
}

std::vector<int64_t> shape_of(const ConvGeometry& p, const int64_t* spatial, int64_t lead0,
                              int64_t lead1) {
  std::vector<int64_t> s = {lead0, lead1};
  for (int a = 3 - p.spatial_dims; a < 3; ++a) s.push_back(spatial[a]);
  return s;
}

}  // namespace

ConvGeometry conv_geometry(int dims, c10::IntArrayRef input_size, c10::IntArrayRef kernel_size,
                           c10::IntArrayRef stride, c10::IntArrayRef padding,
                           c10::IntArrayRef dilation) {
  const std::vector<int64_t> strides = expand("stride", stride, dims);
  const std::vector<int64_t> dilations = expand("dilation", dilation, dims);
  for (int i = 0; i < dims; ++i) {
    TORCH_CHECK(strides[i] >= 1, "stride must be positive, got ", stride);
    TORCH_CHECK(dilations[i] >= 1, "dilation must be positive, got ", dilation);
  }
  const auto np = static_cast<int>(padding.size());
  TORCH_CHECK(np == 1 || np == dims || np == 2 * dims, "padding must have 1, ", dims,
              " (one per spatial axis) or ", 2 * dims,
              " values ((before, after) per axis), got ", padding);
  std::vector<int64_t> pad_lo(dims), pad_hi(dims);
  for (int i = 0; i < dims; ++i) {
    if (np == 2 * dims) {
      pad_lo[i] = padding[2 * i];
      pad_hi[i] = padding[2 * i + 1];
    } else {
      pad_lo[i] = pad_hi[i] = np == 1 ? padding[0] : padding[i];
    }
    TORCH_CHECK(pad_lo[i] >= 0 && pad_hi[i] >= 0, "padding must be non-negative, got ",
                padding);
  }
  ConvGeometry p;
  p.spatial_dims = dims;
  p.batch = input_size[0];
  p.channels = input_size[1];
  const int off = 3 - dims;
  for (int i = 0; i < dims; ++i) {
    const int a = i + off;
    p.in[a] = input_size[2 + i];
    p.kernel[a] = kernel_size[i];
    p.stride[a] = strides[i];
    p.pad[a] = pad_lo[i];
    p.pad_after[a] = pad_hi[i];
    p.dilation[a] = dilations[i];
    TORCH_CHECK(p.kernel[a] >= 1, "kernel size must be >= 1 along ", axis_name(dims, i),
                ", got ", kernel_size);
    const int64_t extent = p.dilation[a] * (p.kernel[a] - 1) + 1;
    const int64_t padded = p.in[a] + pad_lo[i] + pad_hi[i];
    TORCH_CHECK(extent <= padded, "kernel is larger than the padded input along axis ",
                axis_name(dims, i), ": dilated kernel extent ", extent, " (kernel ",
                p.kernel[a], ", dilation ", p.dilation[a], ") > input ", p.in[a],
                " + padding ", pad_lo[i], " + ", pad_hi[i], " = ", padded);
    p.out[a] = conv_out_size(p.in[a], p.kernel[a], p.stride[a], pad_lo[i], pad_hi[i],
                             p.dilation[a]);
  }
  return p;
}

std::vector<int64_t> spatial(const int64_t (&v)[3], int dims) {
  return std::vector<int64_t>(v + 3 - dims, v + 3);
}

std::vector<int64_t> depthwise_output_shape(const ConvGeometry& p) {
  return shape_of(p, p.out, p.batch, p.channels);
}
std::vector<int64_t> depthwise_weight_shape(const ConvGeometry& p) {
  return shape_of(p, p.kernel, p.channels, 1);
}

ConvGeometry depthwise_forward_params(const at::Tensor& input, const at::Tensor& weight,
                                      const std::optional<at::Tensor>& bias,
                                      c10::IntArrayRef stride, c10::IntArrayRef padding,
                                      c10::IntArrayRef dilation) {
  check_input_dims(input, "input");
  const int dims = static_cast<int>(input.dim()) - 2;
  const int64_t C = input.size(1);
  TORCH_CHECK(input.is_floating_point(), "input must be a floating-point tensor, got ",
              input.scalar_type());
  TORCH_CHECK(weight.dim() == input.dim() && weight.size(0) == C && weight.size(1) == 1,
              "weight must have shape (C, 1, ", dims == 2 ? "kH, kW" : "kD, kH, kW",
              ") with C = input channels = ", C, ", got ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == input.scalar_type(), "weight dtype ", weight.scalar_type(),
              " does not match input dtype ", input.scalar_type());
  TORCH_CHECK(weight.device() == input.device(), "weight is on ", weight.device(),
              " but input is on ", input.device());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == C, "bias must have shape (", C,
                ",) = (input channels,), got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == input.scalar_type(), "bias dtype ", bias->scalar_type(),
                " does not match input dtype ", input.scalar_type());
    TORCH_CHECK(bias->device() == input.device(), "bias is on ", bias->device(),
                " but input is on ", input.device());
  }
  return conv_geometry(dims, input.sizes(), weight.sizes().slice(2), stride, padding, dilation);
}

namespace {

// grad_output against an input of input_size and a kernel of kernel_size.
ConvGeometry depthwise_backward_params(const at::Tensor& grad_output,
                                       c10::IntArrayRef input_size,
                                       c10::IntArrayRef kernel_size,
                                       c10::IntArrayRef stride, c10::IntArrayRef padding,
                                       c10::IntArrayRef dilation) {
  check_input_dims(grad_output, "grad_output");
  const int dims = static_cast<int>(grad_output.dim()) - 2;
  TORCH_CHECK(static_cast<int64_t>(input_size.size()) == grad_output.dim(),
              "input_size must have ", grad_output.dim(), " values, got ", input_size);
  TORCH_CHECK(static_cast<int>(kernel_size.size()) == dims, "kernel_size must have ", dims,
              " values, got ", kernel_size);
  auto p = conv_geometry(dims, input_size, kernel_size, stride, padding, dilation);
  const auto expected = depthwise_output_shape(p);
  TORCH_CHECK(grad_output.sizes() == c10::IntArrayRef(expected), "grad_output must have shape ",
              expected, " for input size ", input_size, ", got ", grad_output.sizes());
  return p;
}

}  // namespace

ConvGeometry depthwise_backward_input_params(const at::Tensor& grad_output,
                                             const at::Tensor& weight,
                                             c10::IntArrayRef input_size,
                                             c10::IntArrayRef stride, c10::IntArrayRef padding,
                                             c10::IntArrayRef dilation) {
  TORCH_CHECK(weight.dim() >= 3, "weight must have shape (C, 1, k...), got ", weight.sizes());
  const ConvGeometry p = depthwise_backward_params(grad_output, input_size,
                                                   weight.sizes().slice(2), stride, padding,
                                                   dilation);
  TORCH_CHECK(weight.dim() == p.spatial_dims + 2 && weight.size(0) == p.channels && weight.size(1) == 1,
              "weight must have shape (C, 1, k...) with C = ", p.channels, " and ", p.spatial_dims,
              " kernel sizes, got ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == grad_output.scalar_type(), "weight dtype ", weight.scalar_type(),
              " does not match grad_output dtype ", grad_output.scalar_type());
  return p;
}

ConvGeometry depthwise_backward_weight_params(const at::Tensor& grad_output,
                                              const at::Tensor& input,
                                              c10::IntArrayRef kernel_size,
                                              c10::IntArrayRef stride, c10::IntArrayRef padding,
                                              c10::IntArrayRef dilation) {
  TORCH_CHECK(input.scalar_type() == grad_output.scalar_type(), "input dtype ", input.scalar_type(),
              " does not match grad_output dtype ", grad_output.scalar_type());
  TORCH_CHECK(input.device() == grad_output.device(), "input is on ", input.device(),
              " but grad_output is on ", grad_output.device());
  return depthwise_backward_params(grad_output, input.sizes(), kernel_size, stride, padding,
                                   dilation);
}

namespace {

// grad_bias is a plain reduction over all axes but channels: the library's
// reduction does it well on every device, so it is not hand-written.
at::Tensor depthwise_conv_backward_bias(const at::Tensor& grad_output) {
  check_input_dims(grad_output, "grad_output");
  std::vector<int64_t> axes = {0};
  for (int64_t d = 2; d < grad_output.dim(); ++d) axes.push_back(d);
  if (compute_type(grad_output.scalar_type()) != grad_output.scalar_type()) {
    return grad_output.sum(axes, false, at::kFloat).to(grad_output.scalar_type());
  }
  return grad_output.sum(axes);
}

}  // namespace

// Depthwise convolution, 2-D (input N,C,H,W) or 3-D (N,C,D,H,W); weight
// (C, 1, k...).  stride/dilation: 1 or one value per spatial axis; padding:
// 1, one per axis, or (before, after) pairs per axis in D, H, W order.
TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def("depthwise_conv(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
        "int[] dilation) -> Tensor");
  m.def("depthwise_conv_backward_input(Tensor grad_output, Tensor weight, int[] input_size, "
        "int[] stride, int[] padding, int[] dilation) -> Tensor");
  m.def("depthwise_conv_backward_weight(Tensor grad_output, Tensor input, int[] kernel_size, "
        "int[] stride, int[] padding, int[] dilation) -> Tensor");
  m.def("depthwise_conv_backward_bias(Tensor grad_output) -> Tensor");
}

TORCH_LIBRARY_IMPL(leanconv, CompositeExplicitAutograd, m) {
  m.impl("depthwise_conv_backward_bias", &depthwise_conv_backward_bias);
}

}  // namespace leanconv
