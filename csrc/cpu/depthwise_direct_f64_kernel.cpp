// The CPU depthwise direct path (channels_last, small kernels) for double: a file per dtype so that the
// build compiles them in parallel (see depthwise_kernel.cpp).
#include "cpu/depthwise_direct.h"

LEANCONV_DEPTHWISE_DIRECT_INSTANTIATE(double)
