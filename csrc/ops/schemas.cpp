// The schemas of every leanconv op.  Backends add kernels with
// TORCH_LIBRARY_IMPL(leanconv, CPU|CUDA, m) in csrc/cpu and csrc/cuda; Python
// adds fake (meta) kernels and autograd in leanconv/ops.
#include <torch/library.h>

TORCH_LIBRARY(leanconv, m) {
  // Depthwise convolution, 2-D (input N,C,H,W) or 3-D (N,C,D,H,W); weight
  // (C, 1, k...).  stride/dilation: 1 or one value per spatial axis; padding:
  // 1, one per axis, or (before, after) pairs per axis in D, H, W order.
  m.def("depthwise_conv(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
        "int[] dilation) -> Tensor");
  m.def("depthwise_conv_backward_input(Tensor grad_output, Tensor weight, int[] input_size, "
        "int[] stride, int[] padding, int[] dilation) -> Tensor");
  m.def("depthwise_conv_backward_weight(Tensor grad_output, Tensor input, int[] kernel_size, "
        "int[] stride, int[] padding, int[] dilation) -> Tensor");
  m.def("depthwise_conv_backward_bias(Tensor grad_output) -> Tensor");
  // Explicit wave-equation steps in place (see ops/wave_params.h): `steps`
  // central-difference steps of B mirrored H x W fields; the buffers prev and
  // now swap roles after every step, so the newest field ends in prev when
  // steps is odd and in now when it is even.
  m.def("wave_step_(Tensor(a!) prev, Tensor(b!) now, Tensor a_k, Tensor? b, Tensor? negd, Tensor? force, "
        "Tensor? a_f, float k0, float k1, float k2, int steps) -> ()");
}
