// Links kvkit::cuda from a C++-only project; runs without a GPU.
#include <kvkit/kernel_registry.hpp>

#include <cstdio>

int main() {
  const auto configs = kvkit::built_kernel_configs();
  if (configs.empty()) {
    std::puts("kvkit::built_kernel_configs() is empty");
    return 1;
  }
  const auto found = kvkit::find_kernel_config(configs.front().head_dim, configs.front().dtype);
  if (!found) {
    std::puts(found.error.c_str());
    return 1;
  }
  std::printf("kvkit::cuda built %zu kernel configuration(s), first %s\n", configs.size(),
              kvkit::to_string(configs.front()).c_str());
  return 0;
}
