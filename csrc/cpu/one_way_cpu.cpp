// CPU implementations of the one-way filter chain ops: checks, layout and
// dtype handling, threading and scratch; the arithmetic is in
// one_way_kernel.cpp (one variant per ISA, chosen at run time).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <tuple>

#include "cpu/one_way_kernel.h"
#include "ops/depthwise.h"
#include "ops/glue.h"
#include "ops/one_way.h"

namespace leanconv {

namespace {

at::Tensor one_way_conv_cpu(const at::Tensor& input, const std::optional<at::Tensor>& filter_d,
                            const at::Tensor& filter_h, const at::Tensor& filter_w,
                            const std::optional<at::Tensor>& scale, c10::IntArrayRef stride,
                            c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const ConvGeometry p =
      one_way_forward_params(input, filter_d, filter_h, filter_w, scale, stride, padding, dilation);
  check_device(input, "input", at::kCPU);
  if (p.batch * p.channels * p.out_plane() == 0)
    return one_way_finish(at::empty(depthwise_output_shape(p), input.options()), input);
  [[maybe_unused]] const auto [x, gy, fd, fh, fw, sc] =  // gy: undefined (no grad_output)
      one_way_operands(input, filter_d, filter_h, filter_w, scale);
  at::Tensor y = at::empty(depthwise_output_shape(p), x.options());
  const auto s = cpu::one_way_scratch(p, false);
  at::Tensor scratch = at::empty({at::get_num_threads(), s.elems}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::one_way_conv (cpu)", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t *fdp = one_way_ptr<scalar_t>(fd), *scp = one_way_ptr<scalar_t>(sc);
    const scalar_t *fhp = fh.const_data_ptr<scalar_t>(), *fwp = fw.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    scalar_t* sp = scratch.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, p.batch * p.channels, 1, [&](int64_t begin, int64_t end) {
      scalar_t* mine = sp + at::get_thread_num() * s.elems;
      LEANCONV_CPU_DISPATCH(one_way_forward_planar, p, xp, fdp, fhp, fwp, scp, yp, mine, begin, end);
    });
  });
  return one_way_finish(y, input);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> one_way_conv_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input,
    const std::optional<at::Tensor>& filter_d, const at::Tensor& filter_h,
    const at::Tensor& filter_w, const std::optional<at::Tensor>& scale, c10::IntArrayRef stride,
    c10::IntArrayRef padding, c10::IntArrayRef dilation, std::array<bool, 2> output_mask) {
  const ConvGeometry p = one_way_backward_params(grad_output, input, filter_d, filter_h,
                                                 filter_w, scale, stride, padding, dilation);
  check_device(input, "input", at::kCPU);
  const bool need_gx = output_mask[0], need_gf = output_mask[1];
  const bool has_d = given(filter_d), has_scale = given(scale);
  const int64_t C = p.channels, row = p.kernel[0] + p.kernel[1] + p.kernel[2] + 1;
  const auto [x, gy, fd, fh, fw, sc] =
      one_way_operands(input, filter_d, filter_h, filter_w, scale, grad_output);
  at::Tensor gx = need_gx ? at::empty(input.sizes(), x.options()) : at::Tensor();
  const int64_t threads = at::get_num_threads();
  at::Tensor partial = need_gf ? at::zeros({threads, C, row}, x.options()) : at::Tensor();
  if (p.batch * C * p.out_plane() == 0) {
    if (need_gx) gx.zero_();
  } else {
    const auto s = cpu::one_way_scratch(p, true);
    at::Tensor scratch = at::empty({threads, s.elems}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::one_way_conv_backward (cpu)", [&] {
      const scalar_t *xp = x.const_data_ptr<scalar_t>(), *gyp = gy.const_data_ptr<scalar_t>();
      const scalar_t *fdp = one_way_ptr<scalar_t>(fd), *scp = one_way_ptr<scalar_t>(sc);
      const scalar_t *fhp = fh.const_data_ptr<scalar_t>(), *fwp = fw.const_data_ptr<scalar_t>();
      scalar_t* gxp = need_gx ? gx.mutable_data_ptr<scalar_t>() : nullptr;
      scalar_t* pp = need_gf ? partial.mutable_data_ptr<scalar_t>() : nullptr;
      scalar_t* sp = scratch.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, p.batch * C, 1, [&](int64_t begin, int64_t end) {
        const int64_t t = at::get_thread_num();
        scalar_t* gf = pp ? pp + t * C * row : nullptr;
        LEANCONV_CPU_DISPATCH(one_way_backward_planar, p, gyp, xp, fdp, fhp, fwp, scp, gxp, gf,
                              sp + t * s.elems, begin, end);
      });
    });
  }
  // per-thread partial sums, added in a fixed order (deterministic for a given
  // thread count)
  return one_way_backward_results(p, input, gx, need_gf ? partial.sum(0) : at::Tensor(), has_d,
                                  has_scale);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("one_way_conv", &one_way_conv_cpu);
  m.impl("one_way_conv_backward", &one_way_conv_backward_cpu);
}

}  // namespace leanconv
