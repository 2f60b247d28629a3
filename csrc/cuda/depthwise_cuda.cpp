// CUDA implementations of the depthwise convolution ops: argument checks,
// layout and dtype handling, choice of kernel.  The kernels are in
// depthwise_cuda_kernels.cuh (instantiated per dtype in depthwise_cuda_<dtype>.cu),
// their tiling and index arithmetic in depthwise_cuda_plan.h and
// depthwise_cuda_generic.h.  This file holds no device code: it is plain C++
// (compiled only in CUDA builds), so the torch headers, the expensive part,
// are parsed once by the C++ compiler instead of once per GPU arch by nvcc.
//
// Layouts: the kernels read and write contiguous NC(D)HW.  channels_last
// inputs (and any other strides) are copied to contiguous NC(D)HW first, and
// the result is returned in the input's layout (channels_last in,
// channels_last out, like the CPU ops and the fake kernels).
//
// Kernel choice, per op (float32/float16/bfloat16 accumulate in float32):
//  * forward: tiled kernel when stride and dilation along W are 1 and its
//    tiles fit in shared memory; else one thread per output.  float64 always
//    takes the direct kernel.
//  * grad_input: stride 1 on every axis -> the forward kernels on grad_output
//    with the flipped kernel (padding (k-1)*dilation - pad); else a gather
//    kernel, one thread per input element.
//  * grad_weight: tiled kernel (stride and dilation 1 along W) or one block
//    per (channel, tap, chunk); both write per-chunk partial sums that a second
//    kernel adds up in a fixed order, so the result is deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "cuda/depthwise_cuda_launch.h"
#include "ops/depthwise.h"
#include "ops/glue.h"

namespace leanconv {

namespace {

namespace dw = cuda_dw;

struct DeviceInfo {
  size_t smem_optin = 0;       // largest dynamic shared memory a block may opt in to
  int64_t target_blocks = 0;   // about 32 blocks per multiprocessor
};

DeviceInfo device_info(int device) {
  int smem = 0, sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return {static_cast<size_t>(smem), 32 * static_cast<int64_t>(sms)};
}

// The CUDA type the kernels take for an ATen scalar type.
template <typename S>
struct CudaScalar {
  using type = S;
};
template <>
struct CudaScalar<at::Half> {
  using type = __half;
};
template <>
struct CudaScalar<at::BFloat16> {
  using type = __nv_bfloat16;
};

void check_dtype(at::ScalarType t, const char* op) {
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op,
              ": CUDA kernels support float32, float64, float16 and bfloat16, got ", t);
}

template <typename T>
const T* cptr(const at::Tensor& t) {
  return static_cast<const T*>(t.const_data_ptr());
}
template <typename T>
T* mptr(at::Tensor& t) {
  return static_cast<T*>(t.mutable_data_ptr());
}

void check_cuda(const at::Tensor& t, const char* name) { check_device(t, name, at::kCUDA); }

// y (contiguous, preallocated) = depthwise(x, w) + b for geometry g.
void run_forward(const ConvGeometry& g, const at::Tensor& x, const at::Tensor& w, const at::Tensor* b,
                 at::Tensor& y) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  const DeviceInfo info = device_info(x.get_device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "leanconv::depthwise_conv (cuda)", [&] {
    using T = typename CudaScalar<scalar_t>::type;
    const T* bp = b != nullptr ? cptr<T>(*b) : nullptr;
    if constexpr (!std::is_same_v<T, double>) {
      dw::FwdFast plan;
      if (dw::plan_forward_fast(g, info.smem_optin, sizeof(float), plan)) {
        dw::launch_forward_fast<T>(plan, cptr<T>(x), cptr<T>(w), bp, mptr<T>(y), stream);
        return;
      }
    }
    dw::launch_forward_direct<T>(g, cptr<T>(x), cptr<T>(w), bp, mptr<T>(y), stream);
  });
}

at::Tensor depthwise_conv_cuda(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, c10::IntArrayRef stride,
                               c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const ConvGeometry p = depthwise_forward_params(input, weight, bias, stride, padding, dilation);
  check_cuda(input, "input");
  check_dtype(input.scalar_type(), "depthwise_conv");
  const c10::cuda::CUDAGuard guard(input.device());
  const auto mf = layout_of(input);
  const auto shape = depthwise_output_shape(p);
  if (p.batch * p.channels * p.out_plane() == 0)
    return at::empty(shape, input.options().memory_format(mf));
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  at::Tensor b;
  if (bias.has_value() && bias->defined()) b = bias->contiguous();
  at::Tensor y = at::empty(shape, x.options());
  run_forward(p, x, w, b.defined() ? &b : nullptr, y);
  return in_layout(y, mf);
}

at::Tensor depthwise_conv_backward_input_cuda(const at::Tensor& grad_output, const at::Tensor& weight,
                                              c10::IntArrayRef input_size, c10::IntArrayRef stride,
                                              c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  check_cuda(grad_output, "grad_output");
  const ConvGeometry p = depthwise_backward_input_params(grad_output, weight, input_size, stride,
                                                         padding, dilation);
  TORCH_CHECK(weight.device() == grad_output.device(), "weight is on ", weight.device(),
              " but grad_output is on ", grad_output.device());
  check_dtype(grad_output.scalar_type(), "depthwise_conv_backward_input");
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const auto mf = layout_of(grad_output);
  if (p.batch * p.channels * p.in_plane() == 0)
    return at::empty(input_size, grad_output.options().memory_format(mf));
  const at::Tensor gy = grad_output.contiguous(), w = weight.contiguous();
  at::Tensor gx = at::empty(input_size, gy.options());
  if (dw::unit_stride(p)) {
    std::vector<int64_t> flip_dims;
    for (int64_t d = 2; d < w.dim(); ++d) flip_dims.push_back(d);
    const at::Tensor wf = w.flip(flip_dims).contiguous();
    run_forward(dw::grad_input_as_forward(p), gy, wf, nullptr, gx);
  } else {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(gy.get_device()).stream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(),
                                    "leanconv::depthwise_conv_backward_input (cuda)", [&] {
      using T = typename CudaScalar<scalar_t>::type;
      dw::launch_backward_input_gather<T>(p, cptr<T>(gy), cptr<T>(w), mptr<T>(gx), stream);
    });
  }
  return in_layout(gx, mf);
}

at::Tensor depthwise_conv_backward_weight_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                               c10::IntArrayRef kernel_size, c10::IntArrayRef stride,
                                               c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  check_cuda(grad_output, "grad_output");
  check_cuda(input, "input");
  const ConvGeometry p = depthwise_backward_weight_params(grad_output, input, kernel_size, stride,
                                                          padding, dilation);
  check_dtype(grad_output.scalar_type(), "depthwise_conv_backward_weight");
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const auto wshape = depthwise_weight_shape(p);
  if (p.batch * p.channels * p.out_plane() == 0) return at::zeros(wshape, grad_output.options());
  const at::Tensor gy = grad_output.contiguous(), x = input.contiguous();
  at::Tensor gw = at::empty(wshape, gy.options());
  const DeviceInfo info = device_info(gy.get_device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(gy.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(),
                                  "leanconv::depthwise_conv_backward_weight (cuda)", [&] {
    using T = typename CudaScalar<scalar_t>::type;
    if constexpr (!std::is_same_v<T, double>) {
      dw::WgFast plan;
      if (dw::plan_wgrad_fast(p, info.smem_optin, info.target_blocks, plan)) {
        at::Tensor partial = at::empty({p.channels * plan.S * plan.taps}, gy.options().dtype(at::kFloat));
        float* pp = partial.mutable_data_ptr<float>();
        dw::launch_wgrad_fast<T>(plan, cptr<T>(gy), cptr<T>(x), pp, stream);
        dw::launch_reduce_partials<T, float>(pp, mptr<T>(gw), p.channels, plan.S, plan.taps, stream);
        return;
      }
    }
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const dw::WgGeneric plan = dw::plan_wgrad_generic(p, info.target_blocks);
    at::Tensor partial = at::empty({p.channels * plan.S * plan.taps},
                                   gy.options().dtype(std::is_same_v<Acc, double> ? at::kDouble : at::kFloat));
    Acc* pp = static_cast<Acc*>(partial.mutable_data_ptr());
    dw::launch_wgrad_generic<T, Acc>(plan, cptr<T>(gy), cptr<T>(x), pp, stream);
    dw::launch_reduce_partials<T, Acc>(pp, mptr<T>(gw), p.channels, plan.S, plan.taps, stream);
  });
  return gw;
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CUDA, m) {
  m.impl("depthwise_conv", &depthwise_conv_cuda);
  m.impl("depthwise_conv_backward_input", &depthwise_conv_backward_input_cuda);
  m.impl("depthwise_conv_backward_weight", &depthwise_conv_backward_weight_cuda);
}

}  // namespace leanconv
