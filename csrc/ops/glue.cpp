// What the CPU and CUDA glue of every op family shares (see glue.h).
#include "ops/glue.h"

#include <ATen/ATen.h>

namespace leanconv {

void check_device(const at::Tensor& t, const char* name, c10::DeviceType type) {
  TORCH_CHECK(t.device().type() == type, name, " must be a ", type == c10::DeviceType::CUDA ? "CUDA" : "CPU",
              " tensor here, got device ", t.device());
}

at::ScalarType compute_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

bool prefers_channels_last(const at::Tensor& t) {
  if (t.is_contiguous()) return false;
  return t.dim() == 4 ? t.is_contiguous(at::MemoryFormat::ChannelsLast)
                      : t.dim() == 5 && t.is_contiguous(at::MemoryFormat::ChannelsLast3d);
}

at::MemoryFormat layout_of(const at::Tensor& t) {
  if (!prefers_channels_last(t)) return at::MemoryFormat::Contiguous;
  return t.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::ChannelsLast3d;
}

at::Tensor in_layout(const at::Tensor& y, at::MemoryFormat mf) {
  return mf == at::MemoryFormat::Contiguous ? y : y.contiguous(mf);
}

}  // namespace leanconv
