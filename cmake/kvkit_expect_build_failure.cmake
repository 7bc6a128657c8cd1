# cmake -DKVKIT_BINARY_DIR=<dir> -DKVKIT_TARGET=<target> [-DKVKIT_CONFIG=<cfg>] -P this-file
#
# Driver of kvkit's compile-fail tests: builds one target that must NOT compile. The build output
# is printed only when the build fails, so the test's PASS_REGULAR_EXPRESSION (the expected
# compiler error) can match it; a successful build prints a marker that the test's
# FAIL_REGULAR_EXPRESSION rejects, and exits non-zero.
cmake_minimum_required(VERSION 3.25)

foreach(_var KVKIT_BINARY_DIR KVKIT_TARGET)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "kvkit_expect_build_failure.cmake: ${_var} is not set")
  endif()
endforeach()

set(_config_args "")
if(KVKIT_CONFIG)
  set(_config_args --config "${KVKIT_CONFIG}")
endif()

execute_process(
  COMMAND "${CMAKE_COMMAND}" --build "${KVKIT_BINARY_DIR}" --target "${KVKIT_TARGET}" ${_config_args}
  RESULT_VARIABLE _result
  OUTPUT_VARIABLE _output
  ERROR_VARIABLE _output)

if(_result EQUAL 0)
  message(FATAL_ERROR
    "kvkit-compile-fail: UNEXPECTED BUILD SUCCESS: ${KVKIT_TARGET} compiled, but it must not.")
endif()

message("kvkit-compile-fail: ${KVKIT_TARGET} failed to build, as expected. Build output:\n${_output}")
