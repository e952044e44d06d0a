// Where a tensor's storage lives. Backends are looked up by this tag.
#pragma once

#include <optional>
#include <string_view>

namespace cellgraph {

enum class Device { cpu, cuda };
inline constexpr int kDeviceCount = 2;

constexpr std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

// The device device_name() calls `name` ("cpu", "cuda"), for options such as --device;
// nullopt for any other name. Whether the device is usable is backend_for's question.
constexpr std::optional<Device> device_named(std::string_view name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  return std::nullopt;
}

}  // namespace cellgraph
