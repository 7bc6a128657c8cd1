# cmake -DKVKIT_STEP=install|find_package|add_subdirectory -D... -P this-file
#
# Driver of kvkit's consumer tests (tests/consumers/):
#   install           cmake --install the kvkit build tree into <build>/consumers/prefix
#   find_package      configure, build and test tests/consumers/find_package against that prefix
#   add_subdirectory  configure, build and test tests/consumers/add_subdirectory, which adds the
#                     kvkit source tree with add_subdirectory()
cmake_minimum_required(VERSION 3.25)

set(_prefix "${KVKIT_CONSUMER_ROOT}/prefix")

function(kvkit_run)
  string(REPLACE ";" " " _pretty "${ARGN}")
  message(STATUS "kvkit consumer test: ${_pretty}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    message(FATAL_ERROR "kvkit consumer test: command failed (${_result}): ${_pretty}")
  endif()
endfunction()

set(_config_args "")
set(_build_type "${KVKIT_CONFIG}")
if(KVKIT_CONFIG)
  set(_config_args --config "${KVKIT_CONFIG}")
else()
  set(_build_type Debug)
endif()

if(KVKIT_STEP STREQUAL "install")
  file(REMOVE_RECURSE "${_prefix}")
  kvkit_run("${CMAKE_COMMAND}" --install "${KVKIT_BINARY_DIR}" --prefix "${_prefix}" ${_config_args})
  if(NOT EXISTS "${_prefix}/include/kvkit")
    message(FATAL_ERROR "kvkit consumer test: no headers were installed into ${_prefix}/include/kvkit")
  endif()
  return()
endif()

if(NOT KVKIT_STEP MATCHES "^(find_package|add_subdirectory)$")
  message(FATAL_ERROR "kvkit consumer test: unknown KVKIT_STEP '${KVKIT_STEP}'")
endif()

set(_source "${KVKIT_SOURCE_DIR}/tests/consumers/${KVKIT_STEP}")
set(_binary "${KVKIT_CONSUMER_ROOT}/${KVKIT_STEP}")
file(REMOVE_RECURSE "${_binary}")

set(_configure
  "${CMAKE_COMMAND}" -S "${_source}" -B "${_binary}"
  -G "${KVKIT_GENERATOR}"
  "-DCMAKE_BUILD_TYPE=${_build_type}"
  "-DCMAKE_CXX_COMPILER=${KVKIT_CXX_COMPILER}")
if(KVKIT_MAKE_PROGRAM)
  list(APPEND _configure "-DCMAKE_MAKE_PROGRAM=${KVKIT_MAKE_PROGRAM}")
endif()

if(KVKIT_STEP STREQUAL "find_package")
  list(APPEND _configure "-DCMAKE_PREFIX_PATH=${_prefix}" "-DKVKIT_EXPECT_CUDA=${KVKIT_CUDA}")
else()
  list(APPEND _configure
    "-DKVKIT_SOURCE_DIR=${KVKIT_SOURCE_DIR}"
    "-DKVKIT_ENABLE_CUDA=${KVKIT_CUDA}"
    "-DKVKIT_EXPECT_CUDA=${KVKIT_CUDA}")
  if(KVKIT_CUDA)
    list(APPEND _configure
      "-DCMAKE_CUDA_COMPILER=${KVKIT_CUDA_COMPILER}"
      "-DKVKIT_CUDA_ARCHITECTURES=${KVKIT_CUDA_ARCHITECTURES}"
      "-DKVKIT_KERNEL_CONFIGS=${KVKIT_KERNEL_CONFIGS}")
  endif()
endif()

kvkit_run(${_configure})
kvkit_run("${CMAKE_COMMAND}" --build "${_binary}" ${_config_args})
execute_process(COMMAND "${CMAKE_COMMAND}" -E chdir "${_binary}"
  "${KVKIT_CTEST}" --output-on-failure --no-tests=error ${_config_args}
  RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "kvkit consumer test: the ${KVKIT_STEP} consumer's tests failed")
endif()
message(STATUS "kvkit consumer test: ${KVKIT_STEP} consumer OK")
