# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
# Runs one benchmark executable once, briefly: a smoke run that proves it starts, runs every
# benchmark and reports no error, not a measurement. Used by the target run-benchmarks-smoke.
#
#   cmake -DKVKIT_SMOKE_COMMAND="<exe>;<args>..." -DKVKIT_SMOKE_NAME=<name> -P smoke.cmake
#
# Fails when the command exits non-zero or a benchmark reports an error (Google Benchmark's
# "ERROR OCCURRED"), except "no CUDA device": GPU benchmarks skip that way on machines without
# one. Prints one summary line; the whole output only on failure.
if(NOT DEFINED KVKIT_SMOKE_COMMAND OR NOT DEFINED KVKIT_SMOKE_NAME)
  message(FATAL_ERROR "smoke.cmake: pass -DKVKIT_SMOKE_COMMAND=<exe;args> -DKVKIT_SMOKE_NAME=<name>")
endif()
string(TIMESTAMP _start "%s")
execute_process(COMMAND ${KVKIT_SMOKE_COMMAND}
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
string(TIMESTAMP _end "%s")
math(EXPR _seconds "${_end} - ${_start}")
set(_all "${_out}\n${_err}")

# Count benchmark lines, those skipped for want of a GPU, and real errors.
string(REGEX MATCHALL "(^|\n)BM_[^\n]*" _lines "${_out}")
list(LENGTH _lines _run)
string(REGEX MATCHALL "ERROR OCCURRED: 'no CUDA device'" _no_gpu "${_all}")
list(LENGTH _no_gpu _skipped)
string(REPLACE "ERROR OCCURRED: 'no CUDA device'" "" _rest "${_all}")
set(_problem "")
if(NOT _rc EQUAL 0)
  set(_problem "exit status ${_rc}")
elseif(_rest MATCHES "ERROR OCCURRED: '[^\n]*")
  set(_problem "a benchmark reported ${CMAKE_MATCH_0}")
endif()
if(_problem)
  message("${_out}")
  message("${_err}")
  message(FATAL_ERROR "kvkit smoke: ${KVKIT_SMOKE_NAME} FAILED: ${_problem}")
endif()
set(_what "ok")
if(_run GREATER 0)
  set(_what "${_run} benchmarks")
  if(_skipped GREATER 0)
    string(APPEND _what ", ${_skipped} skipped (no CUDA device)")
  endif()
endif()
message("kvkit smoke: ${KVKIT_SMOKE_NAME}: ${_what}, ${_seconds} s")
