// CPU implementations of the depthwise convolution ops: argument checks,
// dtype and layout decisions, threading.  The arithmetic is in
// depthwise_kernel.cpp (one variant per ISA, chosen at run time), which reads
// and writes the tensors through their strides: NCHW, channels_last and any
// other layout are handled without copies.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/depthwise_kernel.h"
#include "ops/depthwise.h"
#include "ops/glue.h"

namespace leanconv {

namespace {

using cpu::DwOp;
using cpu::DwPlan;
using cpu::DwView;

// float, double and bfloat16 run natively (bfloat16 computes in float);
// float16 is converted to float and back.
at::ScalarType kernel_type(at::ScalarType t) { return t == at::kHalf ? at::kFloat : t; }

// The storage type the kernels take for a dtype they run (float, double and
// bfloat16; float16 is converted to float first).
template <typename S>
struct KernelScalar {
  using type = S;
};
template <>
struct KernelScalar<at::BFloat16> {
  using type = cpu::bf16;
};

void check_kernel_type(at::ScalarType t) {
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kBFloat16,
              "leanconv depthwise (cpu): unsupported dtype ", t);
}

void check_cpu(const at::Tensor& t, const char* name) { check_device(t, name, at::kCPU); }

// (N, C, D, H, W) element strides; a 4-D tensor gets D = 1.
DwView view_of(const at::Tensor& t) {
  DwView v;
  v.data = const_cast<void*>(t.const_data_ptr());
  const auto s = t.strides();
  if (t.dim() == 4) {
    v.stride[0] = s[0], v.stride[1] = s[1], v.stride[2] = 0, v.stride[3] = s[2], v.stride[4] = s[3];
  } else {
    for (int i = 0; i < 5; ++i) v.stride[i] = s[i];
  }
  return v;
}

// The tensor in the dtype the kernels read (only float16 changes).
at::Tensor kernel_input(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf ? t.to(at::kFloat) : t;
}

template <typename S>
DwPlan plan_for(const ConvGeometry& p, DwOp op, const DwView& source) {
  const int threads = at::get_num_threads();
  const bool channels_inner = source.stride[1] == 1;
  LEANCONV_CPU_DISPATCH(depthwise_plan<S>, p, op, threads, channels_inner);
}

// A non-finite weight tap times the zero padding is NaN.  The kernels add every tap over a
// zero-padded halo, so a NaN (or inf) tap would spread over the whole plane of its channel,
// where PyTorch's convolution adds only the taps that meet an output: that rare case takes
// PyTorch's path (the same values elsewhere, slower).  The gradient of the explicitly padded
// input, cropped, is the gradient of the input for any (before, after) padding.
// `w` is a contiguous float or double weight (up to tens of thousands of values): a plain
// loop is much cheaper than isfinite().all().item() on every call.  It tests the exponent
// bits (all ones: inf or NaN) with integer operations, which the compiler vectorizes for
// float (four lanes in the glue's baseline instruction set; a std::isfinite loop stays
// scalar: 2-3 % of the profile of a 7x7 layer on 7x7 maps with C = 320, 15680 weights).
template <typename F, typename U>
bool all_finite_bits(const F* v, int64_t n) {
  static_assert(sizeof(F) == sizeof(U));
  constexpr U exponent = sizeof(F) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    U bits;
    std::memcpy(&bits, v + i, sizeof(F));
    bad |= U((bits & exponent) == exponent);
  }
  return bad == 0;
}

bool all_finite(const at::Tensor& w) {
  const int64_t n = w.numel();
  if (w.scalar_type() == at::kFloat) return all_finite_bits<float, uint32_t>(w.const_data_ptr<float>(), n);
  if (w.scalar_type() == at::kDouble) return all_finite_bits<double, uint64_t>(w.const_data_ptr<double>(), n);
  TORCH_CHECK(false, "all_finite: float or double weight expected, got ", w.scalar_type());
}

// Forward with a non-finite weight tap (see backward_input_by_aten): PyTorch's convolution
// skips the taps that fall on symmetric padding; asymmetric padding is what a user of
// nn.Conv2d writes as F.pad + conv, so it is padded explicitly here too.
at::Tensor forward_by_aten(const at::Tensor& input, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, const ConvGeometry& g) {
  const int64_t n = g.spatial_dims;
  const std::vector<int64_t> pad_lo = spatial(g.pad, n), pad_hi = spatial(g.pad_after, n);
  at::Tensor x = input;
  std::vector<int64_t> pad = pad_lo;
  if (pad_lo != pad_hi) {
    std::vector<int64_t> pairs;  // constant_pad_nd wants the last axis first
    for (int64_t i = n - 1; i >= 0; --i) pairs.insert(pairs.end(), {pad_lo[i], pad_hi[i]});
    x = at::constant_pad_nd(input, pairs, 0);
    pad.assign(n, 0);
  }
  const std::vector<int64_t> zeros(n, 0);
  return at::convolution(x, weight, bias, spatial(g.stride, n), pad, spatial(g.dilation, n), false,
                         zeros, input.size(1))
      .contiguous(layout_of(input));
}

at::Tensor backward_input_by_aten(const at::Tensor& grad_output, const at::Tensor& weight,
                                  c10::IntArrayRef input_size, const ConvGeometry& g) {
  const int64_t n = g.spatial_dims;
  const int off = 3 - g.spatial_dims;
  std::vector<int64_t> padded(input_size.begin(), input_size.end());
  for (int64_t i = 0; i < n; ++i) padded[2 + i] += g.pad[off + i] + g.pad_after[off + i];
  const std::vector<int64_t> zeros(n, 0);
  const at::Tensor shape_only = at::empty(padded, grad_output.options());
  at::Tensor gx = std::get<0>(at::convolution_backward(
      grad_output, shape_only, weight, std::nullopt, spatial(g.stride, n), zeros,
      spatial(g.dilation, n), false, zeros, input_size[1], {true, false, false}));
  for (int64_t i = 0; i < n; ++i) gx = gx.narrow(2 + i, g.pad[off + i], input_size[2 + i]);
  return gx.contiguous(layout_of(grad_output));
}

at::Tensor depthwise_conv_cpu(const at::Tensor& input, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                              c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const ConvGeometry p = depthwise_forward_params(input, weight, bias, stride, padding, dilation);
  check_cpu(input, "input");
  const auto mf = layout_of(input);
  if (p.batch * p.channels * p.out_plane() == 0)
    return at::empty(depthwise_output_shape(p), input.options().memory_format(mf));
  const at::Tensor x = kernel_input(input);
  const auto kt = x.scalar_type();
  const auto ct = compute_type(kt);
  const at::Tensor w = weight.to(ct).contiguous();
  if (!all_finite(w))
    return forward_by_aten(input, weight, bias, p);
  at::Tensor b;
  if (bias.has_value() && bias->defined()) b = bias->to(ct).contiguous();
  at::Tensor y = at::empty(depthwise_output_shape(p), x.options().memory_format(mf));
  const DwView xv = view_of(x), yv = view_of(y);
  check_kernel_type(kt);
  const void* bp = b.defined() ? b.const_data_ptr() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, kt, "leanconv::depthwise_conv (cpu)", [&] {
    using S = typename KernelScalar<scalar_t>::type;
    const DwPlan plan = plan_for<S>(p, DwOp::forward, xv);
    at::parallel_for(0, plan.items(), 1, [&](int64_t begin, int64_t end) {
      LEANCONV_CPU_DISPATCH(depthwise_forward<S>, p, plan, xv, w.const_data_ptr(), bp, yv, begin,
                            end);
    });
  });
  return kt == input.scalar_type() ? y : y.to(input.scalar_type());
}

at::Tensor depthwise_conv_backward_input_cpu(const at::Tensor& grad_output,
                                             const at::Tensor& weight,
                                             c10::IntArrayRef input_size,
                                             c10::IntArrayRef stride, c10::IntArrayRef padding,
                                             c10::IntArrayRef dilation) {
  check_cpu(grad_output, "grad_output");
  const ConvGeometry p = depthwise_backward_input_params(grad_output, weight, input_size, stride,
                                                         padding, dilation);
  check_cpu(weight, "weight");
  const auto mf = layout_of(grad_output);
  const auto opts = grad_output.options().memory_format(mf);
  if (p.batch * p.channels * p.in_plane() == 0) return at::empty(input_size, opts);
  if (p.out_plane() == 0) return at::zeros(input_size, opts);
  const at::Tensor gy = kernel_input(grad_output);
  const auto kt = gy.scalar_type();
  const at::Tensor w = weight.to(compute_type(kt)).contiguous();
  if (!all_finite(w))
    return backward_input_by_aten(grad_output, weight, input_size, p);
  at::Tensor gx = at::empty(input_size, gy.options().memory_format(mf));
  const DwView gyv = view_of(gy), gxv = view_of(gx);
  check_kernel_type(kt);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, kt, "leanconv::depthwise_conv_backward_input (cpu)",
                                 [&] {
    using S = typename KernelScalar<scalar_t>::type;
    const DwPlan plan = plan_for<S>(p, DwOp::backward_input, gyv);
    at::parallel_for(0, plan.items(), 1, [&](int64_t begin, int64_t end) {
      LEANCONV_CPU_DISPATCH(depthwise_backward_input<S>, p, plan, gyv, w.const_data_ptr(), gxv,
                            begin, end);
    });
  });
  return kt == grad_output.scalar_type() ? gx : gx.to(grad_output.scalar_type());
}

at::Tensor depthwise_conv_backward_weight_cpu(const at::Tensor& grad_output,
                                              const at::Tensor& input,
                                              c10::IntArrayRef kernel_size,
                                              c10::IntArrayRef stride, c10::IntArrayRef padding,
                                              c10::IntArrayRef dilation) {
  check_cpu(grad_output, "grad_output");
  check_cpu(input, "input");
  const ConvGeometry p = depthwise_backward_weight_params(grad_output, input, kernel_size,
                                                          stride, padding, dilation);
  const std::vector<int64_t> wshape = depthwise_weight_shape(p);
  if (p.batch * p.channels * p.out_plane() == 0) return at::zeros(wshape, grad_output.options());
  const at::Tensor x = kernel_input(input), gy = kernel_input(grad_output);
  const auto kt = x.scalar_type();
  // One partial sum per thread, added up at the end (deterministic for a
  // given thread count).
  const int64_t threads = at::get_num_threads();
  const int64_t per_thread = p.channels * p.kernel_volume();
  at::Tensor partial = at::zeros({threads, per_thread}, x.options().dtype(compute_type(kt)));
  const DwView xv = view_of(x), gyv = view_of(gy);
  check_kernel_type(kt);
  char* base = static_cast<char*>(partial.mutable_data_ptr());
  const int64_t bytes_per_thread = per_thread * partial.element_size();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, kt, "leanconv::depthwise_conv_backward_weight (cpu)",
                                 [&] {
    using S = typename KernelScalar<scalar_t>::type;
    const DwPlan plan = plan_for<S>(p, DwOp::backward_weight, xv);
    at::parallel_for(0, plan.items(), 1, [&](int64_t begin, int64_t end) {
      void* mine = base + at::get_thread_num() * bytes_per_thread;
      LEANCONV_CPU_DISPATCH(depthwise_backward_weight<S>, p, plan, xv, gyv, mine, begin, end);
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
