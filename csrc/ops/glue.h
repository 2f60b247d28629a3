// What the CPU and CUDA glue of every op family shares: the device check,
// the dtype the kernels compute in, and memory layouts.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/MemoryFormat.h>
#include <c10/core/ScalarType.h>

#include <optional>

namespace leanconv {

// An optional tensor argument that is present.
inline bool given(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// Checks that `t` (the argument `name`) lives on the device type of the
// backend: "<name> must be a CPU (CUDA) tensor here, got device ...".
void check_device(const at::Tensor& t, const char* name, c10::DeviceType type);

// The dtype the kernels compute in: float for the half types, else the dtype.
at::ScalarType compute_type(at::ScalarType t);

// True when the tensor's strides are those of channels_last (2-D) or
// channels_last_3d (3-D) and not also plain contiguous.
bool prefers_channels_last(const at::Tensor& t);

// The memory format a result takes for an argument laid out like `t`:
// channels_last in, channels_last out; anything else gives contiguous.
at::MemoryFormat layout_of(const at::Tensor& t);

// y in the memory format mf (y itself when mf is contiguous).
at::Tensor in_layout(const at::Tensor& y, at::MemoryFormat mf);

}  // namespace leanconv
