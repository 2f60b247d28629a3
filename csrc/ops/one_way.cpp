// Schemas, checks and shape arithmetic of the one-way filter chain ops.
#include "ops/one_way.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/depthwise.h"
#include "ops/glue.h"

namespace leanconv {

namespace {

void check_like(const at::Tensor& t, const at::Tensor& input, const char* name) {
  TORCH_CHECK(t.scalar_type() == input.scalar_type(), name, " dtype ", t.scalar_type(),
              " does not match input dtype ", input.scalar_type());
  TORCH_CHECK(t.device() == input.device(), name, " is on ", t.device(), " but input is on ",
              input.device());
}

void check_filter(const at::Tensor& f, const at::Tensor& input, const char* name) {
  TORCH_CHECK(f.dim() == 2 && f.size(0) == input.size(1) && f.size(1) >= 1, name,
              " must have shape (C, k) with C = input channels = ", input.size(1),
              " and k >= 1, got ", f.sizes());
  check_like(f, input, name);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  // One-way filter chain (the spatial part of a CP / one-way factorized
  // convolution): each channel c of a 4-D (N,C,H,W) or 5-D (N,C,D,H,W) input
  // is filtered along W by filter_w[c] (C, kW), then along H by filter_h[c]
  // (C, kH), then along D by filter_d[c] (C, kD; None in 2-D), and multiplied
  // by scale[c] (C,) if given.  Equals a depthwise convolution with the outer
  // product of the filters as kernel; stride/padding/dilation as for
  // depthwise_conv.
  m.def("one_way_conv(Tensor input, Tensor? filter_d, Tensor filter_h, Tensor filter_w, "
        "Tensor? scale, int[] stride, int[] padding, int[] dilation) -> Tensor");
  // All gradients of one_way_conv in one pass: (grad_input, grad_filter_d,
  // grad_filter_h, grad_filter_w, grad_scale).  output_mask = (input,
  // filters and scale); gradients not asked for (and grad_filter_d in 2-D,
  // grad_scale without scale) are returned as empty tensors of shape (0,).
  m.def("one_way_conv_backward(Tensor grad_output, Tensor input, Tensor? filter_d, "
        "Tensor filter_h, Tensor filter_w, Tensor? scale, int[] stride, int[] padding, "
        "int[] dilation, bool[2] output_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

ConvGeometry one_way_forward_params(const at::Tensor& input,
                                    const std::optional<at::Tensor>& filter_d,
                                    const at::Tensor& filter_h, const at::Tensor& filter_w,
                                    const std::optional<at::Tensor>& scale,
                                    c10::IntArrayRef stride, c10::IntArrayRef padding,
                                    c10::IntArrayRef dilation) {
  TORCH_CHECK(input.dim() == 4 || input.dim() == 5,
              "input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got shape ", input.sizes());
  TORCH_CHECK(input.is_floating_point(), "input must be a floating-point tensor, got ",
              input.scalar_type());
  const int dims = static_cast<int>(input.dim()) - 2;
  const bool has_d = given(filter_d);
  TORCH_CHECK(has_d == (dims == 3), dims == 3
                                        ? "filter_d is required for a 5-D (N, C, D, H, W) input"
                                        : "filter_d must be None for a 4-D (N, C, H, W) input");
  if (has_d) check_filter(*filter_d, input, "filter_d");
  check_filter(filter_h, input, "filter_h");
  check_filter(filter_w, input, "filter_w");
  if (given(scale)) {
    TORCH_CHECK(scale->dim() == 1 && scale->size(0) == input.size(1), "scale must have shape (",
                input.size(1), ",) = (input channels,), got ", scale->sizes());
    check_like(*scale, input, "scale");
  }
  std::vector<int64_t> kernel;
  if (has_d) kernel.push_back(filter_d->size(1));
  kernel.push_back(filter_h.size(1));
  kernel.push_back(filter_w.size(1));
  return conv_geometry(dims, input.sizes(), kernel, stride, padding, dilation);
}

ConvGeometry one_way_backward_params(const at::Tensor& grad_output, const at::Tensor& input,
                                     const std::optional<at::Tensor>& filter_d,
                                     const at::Tensor& filter_h, const at::Tensor& filter_w,
                                     const std::optional<at::Tensor>& scale,
                                     c10::IntArrayRef stride, c10::IntArrayRef padding,
                                     c10::IntArrayRef dilation) {
  const ConvGeometry p = one_way_forward_params(input, filter_d, filter_h, filter_w, scale,
                                                stride, padding, dilation);
  check_like(grad_output, input, "grad_output");
  const auto expected = depthwise_output_shape(p);
  TORCH_CHECK(grad_output.sizes() == c10::IntArrayRef(expected), "grad_output must have shape ",
              c10::IntArrayRef(expected), " (the forward output for input ", input.sizes(), "), got ",
              grad_output.sizes());
  return p;
}

at::Tensor one_way_compute(const at::Tensor& t) {
  return t.to(compute_type(t.scalar_type())).contiguous();
}

at::Tensor one_way_compute(const std::optional<at::Tensor>& t) {
  return given(t) ? one_way_compute(*t) : at::Tensor();
}

OneWayOperands one_way_operands(const at::Tensor& input, const std::optional<at::Tensor>& filter_d,
                                const at::Tensor& filter_h, const at::Tensor& filter_w,
                                const std::optional<at::Tensor>& scale, const at::Tensor& grad_output) {
  OneWayOperands o;
  o.fd = one_way_compute(filter_d);
  o.fh = one_way_compute(filter_h);
  o.fw = one_way_compute(filter_w);
  o.sc = one_way_compute(scale);
  o.x = one_way_compute(input);
  if (grad_output.defined()) o.gy = one_way_compute(grad_output);
  return o;
}

at::Tensor one_way_finish(const at::Tensor& y, const at::Tensor& input) {
  at::Tensor out = y.scalar_type() == input.scalar_type() ? y : y.to(input.scalar_type());
  return in_layout(out, layout_of(input));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> one_way_backward_results(
    const ConvGeometry& p, const at::Tensor& input, const at::Tensor& gx, const at::Tensor& gf,
    bool has_d, bool has_scale) {
  const auto dtype = input.scalar_type();
  auto none = [&] { return at::empty({0}, input.options()); };  // fresh: outputs must not alias
  at::Tensor g_in = gx.defined() ? one_way_finish(gx, input) : none();
  at::Tensor g_d = none(), g_h = none(), g_w = none(), g_s = none();
  if (gf.defined()) {
    const int64_t KD = p.kernel[0], KH = p.kernel[1], KW = p.kernel[2];
    if (has_d) g_d = gf.narrow(1, 0, KD).to(dtype).contiguous();
    g_h = gf.narrow(1, KD, KH).to(dtype).contiguous();
    g_w = gf.narrow(1, KD + KH, KW).to(dtype).contiguous();
    if (has_scale) g_s = gf.select(1, KD + KH + KW).to(dtype).contiguous();
  }
  return {g_in, g_d, g_h, g_w, g_s};
}

}  // namespace leanconv
