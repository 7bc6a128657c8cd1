# Install rules and the CMake package (find_package(kvkit)).
include_guard(GLOBAL)

include(CMakePackageConfigHelpers)

set(KVKIT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/kvkit" CACHE STRING
  "Where kvkitConfig.cmake is installed, relative to the install prefix")
mark_as_advanced(KVKIT_INSTALL_CMAKEDIR)

# Every header installs into one prefix, so <kvkit/...> works whichever source folder holds it.
set(_kvkit_header_roots "${PROJECT_SOURCE_DIR}/include/" "${PROJECT_SOURCE_DIR}/policies/")
if(KVKIT_CUDA_ENABLED)
  list(APPEND _kvkit_header_roots "${PROJECT_SOURCE_DIR}/cuda/")
endif()
foreach(_root IN LISTS _kvkit_header_roots)
  if(EXISTS "${_root}kvkit")
    install(DIRECTORY "${_root}kvkit"
      DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
      COMPONENT kvkit_development
      FILES_MATCHING
        PATTERN "*.hpp"
        PATTERN "*.cuh"
        PATTERN "*.inl"
        PATTERN "*.h")
  endif()
endforeach()

set(_kvkit_install_targets kvkit)
if(KVKIT_CUDA_ENABLED)
  list(APPEND _kvkit_install_targets kvkit_cuda)
endif()
if(KVKIT_REDIS_ENABLED)
  list(APPEND _kvkit_install_targets kvkit_redis)
endif()
if(KVKIT_VLLM_HASHING_ENABLED)
  list(APPEND _kvkit_install_targets kvkit_vllm_hashing)
endif()
if(KVKIT_EVENTS_ENABLED)
  list(APPEND _kvkit_install_targets kvkit_events)
endif()
install(TARGETS ${_kvkit_install_targets}
  EXPORT kvkitTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT kvkit_development
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT kvkitTargets
  NAMESPACE kvkit::
  DESTINATION "${KVKIT_INSTALL_CMAKEDIR}"
  COMPONENT kvkit_development)

set(KVKIT_CONFIG_HAS_VLLM_HASHING ${KVKIT_VLLM_HASHING_ENABLED})
set(KVKIT_CONFIG_HAS_EVENTS ${KVKIT_EVENTS_ENABLED})
if(KVKIT_CUDA_ENABLED)
  set(KVKIT_CONFIG_HAS_CUDA TRUE)
  set(KVKIT_CONFIG_KERNEL_CONFIGS "${KVKIT_KERNEL_CONFIGS_NORMALIZED}")
else()
  set(KVKIT_CONFIG_HAS_CUDA FALSE)
  set(KVKIT_CONFIG_KERNEL_CONFIGS "")
endif()
if(KVKIT_REDIS_ENABLED)
  set(KVKIT_CONFIG_HAS_REDIS TRUE)
else()
  set(KVKIT_CONFIG_HAS_REDIS FALSE)
endif()
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/kvkitConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/kvkitConfig.cmake"
  INSTALL_DESTINATION "${KVKIT_INSTALL_CMAKEDIR}")

# 0.x releases: a minor version bump may break the API.
if(KVKIT_CUDA_ENABLED)
  write_basic_package_version_file("${PROJECT_BINARY_DIR}/kvkitConfigVersion.cmake"
    COMPATIBILITY SameMinorVersion)
else()
  write_basic_package_version_file("${PROJECT_BINARY_DIR}/kvkitConfigVersion.cmake"
    COMPATIBILITY SameMinorVersion
    ARCH_INDEPENDENT)
endif()

install(FILES
  "${PROJECT_BINARY_DIR}/kvkitConfig.cmake"
  "${PROJECT_BINARY_DIR}/kvkitConfigVersion.cmake"
  DESTINATION "${KVKIT_INSTALL_CMAKEDIR}"
  COMPONENT kvkit_development)
