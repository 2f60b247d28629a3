// The CPU depthwise planar path (NCHW, 3x3 to 7x7) for double: a file per dtype so that the
// build compiles them in parallel (see depthwise_kernel.cpp).
#include "cpu/depthwise_planar.h"

LEANCONV_DEPTHWISE_PLANAR_INSTANTIATE(double)
