# tests/events: KV events, the vLLM wire format, the ZeroMQ publisher, vLLM-compatible hashes.
# Included by tests/CMakeLists.txt, which calls kvkit_events_tests(): each test is built when the
# optional component it tests is (cmake/kvkit_optional.cmake).
include_guard(GLOBAL)

# The Python that runs tests' peers (a vLLM-schema subscriber, a Prometheus scraper). Debian's
# /usr/bin/python3 first: Debian's python3-* packages install for it.
find_program(KVKIT_TEST_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH
  DOC "Python for tests that run a Python peer")
find_program(KVKIT_TEST_PYTHON NAMES python3 DOC "Python for tests that run a Python peer")
set(KVKIT_EVENTS_TEST_PYTHON "" CACHE FILEPATH
  "Python with msgspec and pyzmq for tests/events (empty: a venv made by the test events.python_env)")

function(kvkit_events_tests)
  set(_dir "${CMAKE_CURRENT_SOURCE_DIR}/events")
  kvkit_add_test("${_dir}/event_sink_test.cpp")
  kvkit_add_test("${_dir}/cache_events_test.cpp")

  if(KVKIT_VLLM_HASHING_ENABLED OR KVKIT_EVENTS_ENABLED)
    find_package(nlohmann_json 3 QUIET CONFIG)
    if(NOT TARGET nlohmann_json::nlohmann_json)
      message(FATAL_ERROR "kvkit: nlohmann-json not found (needed by tests/events). Install the "
        "Debian package nlohmann-json3-dev.")
    endif()
  endif()

  if(KVKIT_VLLM_HASHING_ENABLED)
    kvkit_add_test("${_dir}/vllm_hashing_test.cpp")
    target_link_libraries(kvkit_events_vllm_hashing_test PRIVATE
      kvkit::vllm_hashing nlohmann_json::nlohmann_json)
    target_compile_definitions(kvkit_events_vllm_hashing_test PRIVATE
      "KVKIT_VLLM_HASH_VECTORS=\"${_dir}/data/vllm_hash_vectors.json\"")
    kvkit_add_test("${_dir}/cache_vllm_events_test.cpp")
    target_link_libraries(kvkit_events_cache_vllm_events_test PRIVATE kvkit::vllm_hashing)
    kvkit_add_test("${_dir}/vllm_miss_reasons_test.cpp")
    target_link_libraries(kvkit_events_vllm_miss_reasons_test PRIVATE kvkit::vllm_hashing)
  endif()

  if(NOT KVKIT_EVENTS_ENABLED)
    return()
  endif()
  kvkit_add_test("${_dir}/vllm_wire_test.cpp")
  target_link_libraries(kvkit_events_vllm_wire_test PRIVATE kvkit::events)
  target_include_directories(kvkit_events_vllm_wire_test SYSTEM PRIVATE
    "${KVKIT_MSGPACK_INCLUDE_DIR}")

  # The interop tests run a Python subscriber: msgspec (from PyPI; Debian 12 has no package) and
  # pyzmq (Debian's python3-zmq, or PyPI).
  set(_fixture "")
  if(KVKIT_EVENTS_TEST_PYTHON)
    set(_python "${KVKIT_EVENTS_TEST_PYTHON}")
  elseif(KVKIT_TEST_PYTHON)
    set(_venv "${PROJECT_BINARY_DIR}/python-venv")
    set(_python "${_venv}/bin/python")
    add_test(NAME events.python_env
      COMMAND "${CMAKE_COMMAND}"
        "-DPYTHON=${KVKIT_TEST_PYTHON}"
        "-DVENV=${_venv}"
        "-DREQUIREMENTS=${_dir}/requirements.txt"
        -P "${_dir}/python_env.cmake")
    set_tests_properties(events.python_env PROPERTIES
      FIXTURES_SETUP kvkit_events_python LABELS events TIMEOUT 600)
    set(_fixture FIXTURES_REQUIRED kvkit_events_python)
  else()
    message(FATAL_ERROR "kvkit: tests/events needs python3 (Debian package python3); set "
      "KVKIT_TEST_PYTHON or KVKIT_EVENTS_TEST_PYTHON.")
  endif()
  # Debian's libzmq is not instrumented: under ThreadSanitizer its internal hand-offs are reported
  # (tests/events/tsan.supp says why); kvkit's own threads stay checked.
  set(_env "")
  kvkit_sanitizer_list(_sanitizers)
  if("thread" IN_LIST _sanitizers)
    set(_env ENVIRONMENT "TSAN_OPTIONS=suppressions=${_dir}/tsan.supp")
  endif()
  kvkit_add_test("${_dir}/zmq_interop_test.cpp" PROPERTIES ${_fixture} TIMEOUT 600 ${_env})
  target_link_libraries(kvkit_events_zmq_interop_test PRIVATE
    kvkit::events nlohmann_json::nlohmann_json)
  target_compile_definitions(kvkit_events_zmq_interop_test PRIVATE
    "KVKIT_TEST_PYTHON=\"${_python}\""
    "KVKIT_EVENTS_SUBSCRIBER=\"${_dir}/vllm_subscriber.py\"")

  # The mini engine demo's --events, end to end (two processes on free loopback ports).
  if(TARGET kvkit_mini_engine_demo)
    kvkit_add_test("${_dir}/mini_engine_events_test.cpp" PROPERTIES ${_fixture} TIMEOUT 600)
    target_link_libraries(kvkit_events_mini_engine_events_test PRIVATE
      nlohmann_json::nlohmann_json)
    add_dependencies(kvkit_events_mini_engine_events_test kvkit_mini_engine_demo)
    target_compile_definitions(kvkit_events_mini_engine_events_test PRIVATE
      "KVKIT_TEST_PYTHON=\"${_python}\""
      "KVKIT_EVENTS_SUBSCRIBER=\"${_dir}/vllm_subscriber.py\""
      "KVKIT_MINI_ENGINE_DEMO=\"$<TARGET_FILE:kvkit_mini_engine_demo>\"")
  endif()
endfunction()
