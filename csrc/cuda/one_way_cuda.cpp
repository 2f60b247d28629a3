// CUDA implementations of the one-way filter chain ops: argument checks,
// dtype handling, allocation, the tile plan and its shared-memory check.  The
// kernels are in one_way_cuda.cu, their tiling in one_way_cuda_launch.h.
// This file holds no device code: it is plain C++ (compiled only in CUDA
// builds), so the torch headers are parsed once by the C++ compiler instead
// of once per GPU arch by nvcc.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <array>
#include <tuple>

#include "cuda/one_way_cuda_launch.h"
#include "ops/depthwise.h"
#include "ops/glue.h"
#include "ops/one_way.h"

namespace leanconv {

namespace {

namespace ow = cuda_one_way;

// The kernels' tiling for p; the call fails with a clear message when the
// int index arithmetic of the kernels cannot hold the sizes.
ow::OneWayCudaTiling tiling_for(const ConvGeometry& p) {
  const ow::OneWayCudaTiling t = ow::plan_tiling(p);
  TORCH_CHECK(t.fits_int,
              "one_way_conv (cuda): kernel sizes, strides or dilations too large for the fused "
              "kernel's 32-bit indexing (kernel ", c10::IntArrayRef(p.kernel), ", stride ",
              c10::IntArrayRef(p.stride), ", dilation ", c10::IntArrayRef(p.dilation),
              " in D, H, W order); run this layer on the CPU");
  return t;
}

// Beyond the device's shared-memory limit the tile does not fit and the call
// fails with a clear message.
void check_smem(size_t bytes, const ow::OneWayCudaTiling& t) {
  const auto* prop = at::cuda::getCurrentDeviceProperties();
  TORCH_CHECK(bytes <= prop->sharedMemPerBlockOptin,
              "one_way_conv (cuda): the dilated filters are too long for the fused kernel: a tile "
              "needs ", bytes, " bytes of shared memory (input region ", t.region_rows, " x ",
              t.region_cols, "), the device allows ", prop->sharedMemPerBlockOptin,
              "; use shorter filters/dilations or run this layer on the CPU");
}

// What a launch of either kernel needs besides its operands: the tiling, the
// shared-memory layout (the backward kernel's is larger) and the stream.
struct OneWayLaunch {
  ow::OneWayCudaTiling t;
  ow::OneWayCudaSmem m;
  cudaStream_t stream;
  // The dynamic shared memory of a launch with element type T, checked
  // against the device's limit.
  template <typename T>
  size_t smem_bytes() const {
    const size_t bytes = static_cast<size_t>(m.total) * sizeof(T);
    check_smem(bytes, t);
    return bytes;
  }
};

OneWayLaunch plan_launch(const ConvGeometry& p, bool backward) {
  const ow::OneWayCudaTiling t = tiling_for(p);
  return {t, ow::smem_layout(t, backward), at::cuda::getCurrentCUDAStream()};
}

at::Tensor one_way_conv_cuda(const at::Tensor& input, const std::optional<at::Tensor>& filter_d,
                             const at::Tensor& filter_h, const at::Tensor& filter_w,
                             const std::optional<at::Tensor>& scale, c10::IntArrayRef stride,
                             c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const ConvGeometry p =
      one_way_forward_params(input, filter_d, filter_h, filter_w, scale, stride, padding, dilation);
  check_device(input, "input", at::kCUDA);
  c10::cuda::CUDAGuard guard(input.device());
  if (p.batch * p.channels * p.out_plane() == 0)
    return one_way_finish(at::empty(depthwise_output_shape(p), input.options()), input);
  [[maybe_unused]] const auto [x, gy, fd, fh, fw, sc] =  // gy: undefined (no grad_output)
      one_way_operands(input, filter_d, filter_h, filter_w, scale);
  at::Tensor y = at::empty(depthwise_output_shape(p), x.options());
  const OneWayLaunch l = plan_launch(p, false);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::one_way_conv (cuda)", [&] {
    ow::launch_forward<scalar_t>(l.t, l.m, l.smem_bytes<scalar_t>(), x.const_data_ptr<scalar_t>(),
                                 one_way_ptr<scalar_t>(fd), fh.const_data_ptr<scalar_t>(),
                                 fw.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(sc),
                                 y.mutable_data_ptr<scalar_t>(), l.stream);
  });
  return one_way_finish(y, input);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> one_way_conv_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input,
    const std::optional<at::Tensor>& filter_d, const at::Tensor& filter_h,
    const at::Tensor& filter_w, const std::optional<at::Tensor>& scale, c10::IntArrayRef stride,
    c10::IntArrayRef padding, c10::IntArrayRef dilation, std::array<bool, 2> output_mask) {
  const ConvGeometry p = one_way_backward_params(grad_output, input, filter_d, filter_h,
                                                 filter_w, scale, stride, padding, dilation);
  check_device(input, "input", at::kCUDA);
  c10::cuda::CUDAGuard guard(input.device());
  const bool need_gx = output_mask[0], need_gf = output_mask[1];
  const bool has_d = given(filter_d), has_scale = given(scale);
  const int64_t C = p.channels, row = p.kernel[0] + p.kernel[1] + p.kernel[2] + 1;
  const auto [x, gy, fd, fh, fw, sc] =
      one_way_operands(input, filter_d, filter_h, filter_w, scale, grad_output);
  // both accumulated with atomics: start from zero
  at::Tensor gx = need_gx ? at::zeros(input.sizes(), x.options()) : at::Tensor();
  at::Tensor gf = need_gf ? at::zeros({C, row}, x.options()) : at::Tensor();
  if ((need_gx || need_gf) && p.batch * C * p.out_plane() > 0) {
    const OneWayLaunch l = plan_launch(p, true);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "leanconv::one_way_conv_backward (cuda)", [&] {
      ow::launch_backward<scalar_t>(
          l.t, l.m, l.smem_bytes<scalar_t>(), gy.const_data_ptr<scalar_t>(),
          x.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(fd), fh.const_data_ptr<scalar_t>(),
          fw.const_data_ptr<scalar_t>(), one_way_ptr<scalar_t>(sc),
          need_gx ? gx.mutable_data_ptr<scalar_t>() : nullptr,
          need_gf ? gf.mutable_data_ptr<scalar_t>() : nullptr, l.stream);
    });
  }
  return one_way_backward_results(p, input, gx, gf, has_d, has_scale);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) {
  m.impl("one_way_conv", &one_way_conv_cuda);
  m.impl("one_way_conv_backward", &one_way_conv_backward_cuda);
}

}  // namespace leanconv
