// Where a tensor's storage lives. Backends are looked up by this tag.
#pragma once

#include <string_view>

namespace cellgraph {

enum class Device { cpu, cuda };
inline constexpr int kDeviceCount = 2;

constexpr std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

}  // namespace cellgraph
