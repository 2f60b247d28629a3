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
  // The fourth-order scheme's steps in place (ops/wave_params.h, WaveFd4Params): cc = c^2
  // (1 or B, H, W); constants = (wx, wy, s2, s4); signs of the mirrored images on the
  // (left, right, bottom, top) sides; b with negd for a damped step.  Buffers swap as for wave_step_.
  m.def("wave_fd4_step_(Tensor(a!) prev, Tensor(b!) now, Tensor cc, float[] constants, float[] signs, "
        "int steps, Tensor? force=None, Tensor? a_f=None, Tensor? b=None, Tensor? negd=None) -> ()");
}

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
