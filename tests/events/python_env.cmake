# Makes (once) the Python venv of tests/events' peers:
#   cmake -DPYTHON=<python3> -DVENV=<folder> -DREQUIREMENTS=<requirements.txt> -P python_env.cmake
# The venv sees the base Python's packages (Debian's python3-zmq) and gets the rest with pip.
foreach(_var IN ITEMS PYTHON VENV REQUIREMENTS)
  if(NOT ${_var})
    message(FATAL_ERROR "python_env.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(_python "${VENV}/bin/python")
function(_kvkit_python_ok out)
  if(EXISTS "${_python}")
    execute_process(COMMAND "${_python}" -c "import msgspec, zmq"
      RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
    if(_rc EQUAL 0)
      set(${out} TRUE PARENT_SCOPE)
      return()
    endif()
  endif()
  set(${out} FALSE PARENT_SCOPE)
endfunction()

_kvkit_python_ok(_ok)
if(_ok)
  message(STATUS "python venv ready: ${VENV}")
  return()
endif()

if(NOT EXISTS "${_python}")
  execute_process(COMMAND "${PYTHON}" -m venv --system-site-packages "${VENV}"
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "cannot make a venv with ${PYTHON} (Debian: apt-get install python3-venv)")
  endif()
endif()
execute_process(COMMAND "${_python}" -m pip install --disable-pip-version-check --quiet
    -r "${REQUIREMENTS}"
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "pip could not install ${REQUIREMENTS} into ${VENV} (offline? set "
    "KVKIT_EVENTS_TEST_PYTHON to a Python that has msgspec and zmq)")
endif()
execute_process(COMMAND "${_python}" -c "import zmq" RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
if(NOT _rc EQUAL 0)
  execute_process(COMMAND "${_python}" -m pip install --disable-pip-version-check --quiet pyzmq
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "pip could not install pyzmq into ${VENV}")
  endif()
endif()
_kvkit_python_ok(_ok)
if(NOT _ok)
  message(FATAL_ERROR "the venv ${VENV} still cannot import msgspec and zmq")
endif()
message(STATUS "python venv ready: ${VENV}")
