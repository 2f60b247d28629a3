// CPU implementations of the depthwise convolution ops: argument checks,
// layout and dtype handling, threading; the arithmetic is in
// depthwise_kernel.cpp (one variant per ISA, chosen at run time).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cpu/depthwise_kernel.h"
#include "ops/depthwise.h"

namespace leanconv {

namespace {

// float and double run natively; half types compute in float.
at::ScalarType compute_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

at::MemoryFormat layout_of(const at::Tensor& t) {
  if (!prefers_channels_last(t)) return at::MemoryFormat::Contiguous;
  return t.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::ChannelsLast3d;
}

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor here, got device ", t.device());
}

// Planar, contiguous tensor in the compute dtype.
at::Tensor planar(const at::Tensor& t, at::ScalarType ct) {
  return t.to(ct).contiguous();
}

at::Tensor finish(at::Tensor y, at::ScalarType dtype, at::MemoryFormat mf) {
  if (y.scalar_type() != dtype) y = y.to(dtype);
  return mf == at::MemoryFormat::Contiguous ? y : y.contiguous(mf);
}

void check_weight_for(const at::Tensor& weight, const at::Tensor& like, int64_t channels,
                      int64_t dims) {
  TORCH_CHECK(weight.dim() == dims + 2 && weight.size(0) == channels && weight.size(1) == 1,
              "weight must have shape (C, 1, k...) with C = ", channels, " and ", dims,
              " kernel sizes, got ", weight.sizes());
  TORCH_CHECK(weight.scalar_type() == like.scalar_type(), "weight dtype ", weight.scalar_type(),
              " does not match grad_output dtype ", like.scalar_type());
  check_cpu(weight, "weight");
}

at::Tensor forward_planar(const DepthwiseParams& p, const at::Tensor& x, const at::Tensor& w,
                          const std::optional<at::Tensor>& b) {
  auto y = at::empty(depthwise_output_shape(p), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::depthwise_conv (cpu)", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.has_value() ? b->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, p.batch * p.channels, 1, [&](int64_t begin, int64_t end) {
      LEANCONV_CPU_DISPATCH(depthwise_forward_planar, p, xp, wp, bp, yp, begin, end);
    });
  });
  return y;
}

at::Tensor depthwise_conv_cpu(const at::Tensor& input, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                              c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const DepthwiseParams p = depthwise_forward_params(input, weight, bias, stride, padding, dilation);
  check_cpu(input, "input");
  const auto mf = layout_of(input);
  if (p.batch * p.channels * p.out_plane() == 0)
    return at::empty(depthwise_output_shape(p), input.options().memory_format(mf));
  const auto ct = compute_type(input.scalar_type());
  std::optional<at::Tensor> b;
  if (bias.has_value() && bias->defined()) b = planar(*bias, ct);
  auto y = forward_planar(p, planar(input, ct), planar(weight, ct), b);
  return finish(y, input.scalar_type(), mf);
}

at::Tensor depthwise_conv_backward_input_cpu(const at::Tensor& grad_output,
                                             const at::Tensor& weight,
                                             c10::IntArrayRef input_size,
                                             c10::IntArrayRef stride, c10::IntArrayRef padding,
                                             c10::IntArrayRef dilation) {
  check_cpu(grad_output, "grad_output");
  TORCH_CHECK(weight.dim() >= 3, "weight must have shape (C, 1, k...), got ", weight.sizes());
  const DepthwiseParams p = depthwise_backward_params(grad_output, input_size,
                                                      weight.sizes().slice(2), stride, padding,
                                                      dilation);
  check_weight_for(weight, grad_output, p.channels, p.spatial_dims);
  const auto mf = layout_of(grad_output);
  const auto opts = grad_output.options().memory_format(mf);
  if (p.batch * p.channels * p.in_plane() == 0) return at::empty(input_size, opts);
  if (p.out_plane() == 0) return at::zeros(input_size, opts);
  const auto ct = compute_type(grad_output.scalar_type());
  const at::Tensor gy = planar(grad_output, ct);
  at::Tensor gx;
  const bool unit_stride = p.stride[0] == 1 && p.stride[1] == 1 && p.stride[2] == 1;
  if (unit_stride) {
    // With stride 1, grad_input is a forward convolution of grad_output with
    // the flipped kernel and padding (k-1)*dilation - pad (negative = crop).
    DepthwiseParams q = p;
    for (int a = 0; a < 3; ++a) {
      q.in[a] = p.out[a];
      q.out[a] = p.in[a];
      q.pad[a] = (p.kernel[a] - 1) * p.dilation[a] - p.pad[a];
    }
    std::vector<int64_t> flip_dims;
    for (int64_t d = 2; d < weight.dim(); ++d) flip_dims.push_back(d);
    gx = forward_planar(q, gy, planar(weight, ct).flip(flip_dims).contiguous(), std::nullopt);
  } else {
    gx = at::empty(input_size, gy.options());
    const at::Tensor w = planar(weight, ct);
    AT_DISPATCH_FLOATING_TYPES(ct, "leanconv::depthwise_conv_backward_input (cpu)", [&] {
      const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
      const scalar_t* wp = w.const_data_ptr<scalar_t>();
      scalar_t* gxp = gx.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, p.batch * p.channels, 1, [&](int64_t begin, int64_t end) {
        LEANCONV_CPU_DISPATCH(depthwise_backward_input_planar_scatter, p, gyp, wp, gxp, begin, end);
      });
    });
  }
  return finish(gx, grad_output.scalar_type(), mf);
}

at::Tensor depthwise_conv_backward_weight_cpu(const at::Tensor& grad_output,
                                              const at::Tensor& input,
                                              c10::IntArrayRef kernel_size,
                                              c10::IntArrayRef stride, c10::IntArrayRef padding,
                                              c10::IntArrayRef dilation) {
  check_cpu(grad_output, "grad_output");
  check_cpu(input, "input");
  TORCH_CHECK(input.scalar_type() == grad_output.scalar_type(), "input dtype ",
              input.scalar_type(), " does not match grad_output dtype ",
              grad_output.scalar_type());
  const DepthwiseParams p = depthwise_backward_params(grad_output, input.sizes(), kernel_size,
                                                      stride, padding, dilation);
  std::vector<int64_t> wshape = depthwise_weight_shape(p);
  const auto ct = compute_type(grad_output.scalar_type());
  if (p.batch * p.channels * p.out_plane() == 0)
    return at::zeros(wshape, grad_output.options());
  const at::Tensor x = planar(input, ct);
  const at::Tensor gy = planar(grad_output, ct);
  // One partial sum per thread, added up at the end (deterministic for a
  // given thread count).
  const int64_t threads = at::get_num_threads();
  at::Tensor partial = at::zeros({threads, p.channels * p.kernel_volume()}, x.options());
  AT_DISPATCH_FLOATING_TYPES(ct, "leanconv::depthwise_conv_backward_weight (cpu)", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
    scalar_t* pp = partial.mutable_data_ptr<scalar_t>();
    const int64_t stride_t = p.channels * p.kernel_volume();
    at::parallel_for(0, p.batch * p.channels, 1, [&](int64_t begin, int64_t end) {
      scalar_t* mine = pp + at::get_thread_num() * stride_t;
      LEANCONV_CPU_DISPATCH(depthwise_backward_weight_planar, p, xp, gyp, mine, begin, end);
    });
  });
  return partial.sum(0).view(wshape).to(grad_output.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("depthwise_conv", &depthwise_conv_cpu);
  m.impl("depthwise_conv_backward_input", &depthwise_conv_backward_input_cpu);
  m.impl("depthwise_conv_backward_weight", &depthwise_conv_backward_weight_cpu);
}

}  // namespace leanconv
