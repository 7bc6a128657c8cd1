# CUDA detection, kernel configuration list and the kvkit::cuda library.
include_guard(GLOBAL)

include(CheckLanguage)

set(KVKIT_KERNEL_HEAD_DIMS 64 128 256)
set(KVKIT_KERNEL_DTYPES fp16 bf16)

# kvkit_detect_cuda(<out_var>)
# Resolves KVKIT_ENABLE_CUDA (AUTO|ON|OFF) to TRUE/FALSE. ON without nvcc is an error.
function(kvkit_detect_cuda out_var)
  string(TOUPPER "${KVKIT_ENABLE_CUDA}" _mode)
  if(_mode MATCHES "^(ON|YES|TRUE|Y|1)$")
    set(_mode ON)
  elseif(_mode MATCHES "^(OFF|NO|FALSE|N|0)$")
    set(_mode OFF)
  elseif(NOT _mode STREQUAL "AUTO")
    message(FATAL_ERROR
      "kvkit: KVKIT_ENABLE_CUDA='${KVKIT_ENABLE_CUDA}'. Accepted values: AUTO, ON, OFF.")
  endif()

  if(_mode STREQUAL "OFF")
    set(${out_var} FALSE PARENT_SCOPE)
    return()
  endif()

  # nvcc is often installed without being on PATH; look in the usual toolkit location too.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(KVKIT_NVCC_EXECUTABLE nvcc
      HINTS ENV CUDA_PATH ENV CUDA_HOME
      PATH_SUFFIXES bin
      PATHS /usr/local/cuda/bin
      DOC "nvcc used when KVKIT_ENABLE_CUDA is AUTO or ON")
    mark_as_advanced(KVKIT_NVCC_EXECUTABLE)
    if(KVKIT_NVCC_EXECUTABLE)
      set(ENV{CUDACXX} "${KVKIT_NVCC_EXECUTABLE}")
    endif()
  endif()

  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(${out_var} TRUE PARENT_SCOPE)
  elseif(_mode STREQUAL "ON")
    message(FATAL_ERROR
      "kvkit: KVKIT_ENABLE_CUDA=ON but no working CUDA compiler (nvcc) was found. Install the "
      "CUDA Toolkit and put nvcc on PATH (or set CUDACXX / CMAKE_CUDA_COMPILER), "
      "or configure with -DKVKIT_ENABLE_CUDA=AUTO or OFF.")
  else()
    message(STATUS "kvkit: nvcc not found; building without CUDA (KVKIT_ENABLE_CUDA=AUTO)")
    set(${out_var} FALSE PARENT_SCOPE)
  endif()
endfunction()

# kvkit_parse_kernel_configs(<out_list>)
# Validates KVKIT_KERNEL_CONFIGS; every entry is hd<head_dim>_<dtype>.
function(kvkit_parse_kernel_configs out_var)
  set(_accepted "")
  foreach(_hd IN LISTS KVKIT_KERNEL_HEAD_DIMS)
    foreach(_dt IN LISTS KVKIT_KERNEL_DTYPES)
      list(APPEND _accepted "hd${_hd}_${_dt}")
    endforeach()
  endforeach()
  list(JOIN _accepted ", " _accepted_text)

  # Accept commas as separators too ("hd128_bf16,hd64_fp16").
  string(REPLACE "," ";" _requested "${KVKIT_KERNEL_CONFIGS}")
  set(_result "")
  foreach(_c IN LISTS _requested)
    string(STRIP "${_c}" _c)
    string(TOLOWER "${_c}" _c)
    if(_c STREQUAL "")
      continue()
    endif()
    if(NOT _c IN_LIST _accepted)
      message(FATAL_ERROR
        "kvkit: KVKIT_KERNEL_CONFIGS contains '${_c}', which is not a kernel configuration.\n"
        "Accepted values (hd<head_dim>_<dtype>): ${_accepted_text}.\n"
        "Example: -DKVKIT_KERNEL_CONFIGS=\"hd128_bf16;hd64_fp16\"")
    endif()
    list(APPEND _result "${_c}")
  endforeach()
  list(REMOVE_DUPLICATES _result)
  if(NOT _result)
    message(FATAL_ERROR
      "kvkit: KVKIT_KERNEL_CONFIGS is empty; name at least one of: ${_accepted_text}.")
  endif()
  set(${out_var} "${_result}" PARENT_SCOPE)
endfunction()

option(KVKIT_CUDA_STATIC_RUNTIME
  "Link the CUDA runtime statically (cudart_static) into kvkit::cuda and kvkit's CUDA programs, so \
that they run on a machine whose toolkit is another version (benchmarks/cuda/gpu_check prepare)"
  OFF)

# kvkit_cuda_target_properties(<target>)
# Architectures, C++20 and the CUDA runtime (shared, or static with KVKIT_CUDA_STATIC_RUNTIME)
# for one target with CUDA sources.
function(kvkit_cuda_target_properties target)
  if(KVKIT_CUDA_STATIC_RUNTIME)
    set(_runtime Static)
  else()
    set(_runtime Shared)
  endif()
  set_target_properties(${target} PROPERTIES
    CUDA_ARCHITECTURES "${KVKIT_CUDA_ARCHITECTURES}"
    CUDA_EXTENSIONS OFF
    CUDA_RUNTIME_LIBRARY ${_runtime})
  if(DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set_target_properties(${target} PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON)
  else()
    # This CMake version does not know nvcc's C++20 flag; pass it directly.
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>")
  endif()
endfunction()

# kvkit_add_cuda_library()
# Generates one translation unit per kernel configuration from cuda/src/kernel_config.cu.in and
# builds them, with cuda/src/registry.cu (configuration list, entry-point tables) and
# cuda/src/kernel_api.cu (argument checks, planning, dispatch of every kernel), into the static
# library kvkit_cuda (kvkit::cuda).
# Expects KVKIT_KERNEL_CONFIGS_NORMALIZED from kvkit_parse_kernel_configs().
function(kvkit_add_cuda_library)
  set(_configs "${KVKIT_KERNEL_CONFIGS_NORMALIZED}")
  set(_gen_dir "${PROJECT_BINARY_DIR}/generated/kvkit_cuda")
  set(_template "${PROJECT_SOURCE_DIR}/cuda/src/kernel_config.cu.in")
  set(_sources "")
  set(_list_lines "")
  foreach(_c IN LISTS _configs)
    string(REGEX MATCH "^hd([0-9]+)_([a-z0-9]+)$" _ "${_c}")
    set(KVKIT_CONFIG_NAME "${_c}")
    set(KVKIT_CONFIG_HEAD_DIM "${CMAKE_MATCH_1}")
    set(KVKIT_CONFIG_DTYPE "${CMAKE_MATCH_2}")
    configure_file("${_template}" "${_gen_dir}/kernel_config_${_c}.cu" @ONLY)
    list(APPEND _sources "${_gen_dir}/kernel_config_${_c}.cu")
    string(APPEND _list_lines "KVKIT_KERNEL_CONFIG(${_c})\n")
  endforeach()

  # X-macro list read by registry.cu; rewritten only when the list changes.
  file(CONFIGURE OUTPUT "${_gen_dir}/kernel_config_list.inc"
    CONTENT "// Kernel configurations of this build (KVKIT_KERNEL_CONFIGS).\n${_list_lines}"
    @ONLY)

  add_library(kvkit_cuda STATIC ${_sources}
    "${PROJECT_SOURCE_DIR}/cuda/src/registry.cu"
    "${PROJECT_SOURCE_DIR}/cuda/src/kernel_api.cu")
  add_library(kvkit::cuda ALIAS kvkit_cuda)
  set_target_properties(kvkit_cuda PROPERTIES
    EXPORT_NAME cuda
    OUTPUT_NAME kvkit_cuda
    POSITION_INDEPENDENT_CODE ON)
  kvkit_cuda_target_properties(kvkit_cuda)
  target_include_directories(kvkit_cuda PRIVATE "${_gen_dir}")
  if(KVKIT_CUDA_STATIC_RUNTIME)
    target_link_libraries(kvkit_cuda PUBLIC kvkit::kvkit CUDA::cudart_static)
  else()
    target_link_libraries(kvkit_cuda PUBLIC kvkit::kvkit CUDA::cudart)
  endif()
  if(NOT MSVC)
    target_compile_options(kvkit_cuda PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>")
  endif()
  if(KVKIT_CUDA_PTXAS_VERBOSE)
    target_compile_options(kvkit_cuda PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:-Xptxas=-v>")
  endif()

  # The GPU benchmarks report every figure beside a cuBLAS GEMM rate measured in the same run.
  if(KVKIT_BUILD_BENCHMARKS)
    cmake_language(DEFER DIRECTORY "${PROJECT_SOURCE_DIR}" CALL kvkit_link_cuda_benchmarks)
  endif()
endfunction()

option(KVKIT_CUDA_PTXAS_VERBOSE
  "Print ptxas register, shared-memory and spill reports for kvkit::cuda (-Xptxas=-v)" OFF)

# kvkit_link_cuda_benchmarks()
# Runs at the end of the top-level directory (deferred by kvkit_add_cuda_library), after
# benchmarks/ has defined its targets: links cuBLAS into the benchmarks built from
# benchmarks/cuda/ (kvkit_bench_cuda_*) and tells them so with KVKIT_HAVE_CUBLAS. Without
# CUDA::cublas they still build, and their GEMM limit benchmark reports that it was skipped.
function(kvkit_link_cuda_benchmarks)
  if(NOT TARGET CUDA::cublas OR NOT EXISTS "${PROJECT_SOURCE_DIR}/benchmarks/CMakeLists.txt")
    return()
  endif()
  get_property(_targets DIRECTORY "${PROJECT_SOURCE_DIR}/benchmarks" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(_target IN LISTS _targets)
    if(_target MATCHES "^kvkit_bench_cuda_")
      target_link_libraries(${_target} PRIVATE CUDA::cublas)
      target_compile_definitions(${_target} PRIVATE KVKIT_HAVE_CUBLAS=1)
    endif()
  endforeach()
endfunction()
