# tests/metrics: the Prometheus text format (<kvkit/prometheus.hpp>) and the mini engine's
# /metrics endpoint scraped by Prometheus' Python client. Included by tests/CMakeLists.txt, which
# calls kvkit_metrics_tests().
include_guard(GLOBAL)

include("${CMAKE_CURRENT_LIST_DIR}/../events/tests.cmake")  # KVKIT_TEST_PYTHON

function(kvkit_metrics_tests)
  set(_dir "${CMAKE_CURRENT_SOURCE_DIR}/metrics")
  kvkit_add_test("${_dir}/prometheus_test.cpp")

  if(NOT TARGET kvkit_mini_engine_metrics)
    return()  # cpp-httplib not found (examples/mini_engine/CMakeLists.txt says so)
  endif()
  if(NOT KVKIT_TEST_PYTHON)
    message(FATAL_ERROR "kvkit: tests/metrics needs python3 with prometheus_client (Debian "
      "packages python3 python3-prometheus-client); set KVKIT_TEST_PYTHON.")
  endif()
  find_package(nlohmann_json 3 QUIET CONFIG)
  if(NOT TARGET nlohmann_json::nlohmann_json)
    message(FATAL_ERROR "kvkit: nlohmann-json not found (needed by tests/metrics). Install the "
      "Debian package nlohmann-json3-dev.")
  endif()
  kvkit_add_test("${_dir}/metrics_scrape_test.cpp")
  target_link_libraries(kvkit_metrics_metrics_scrape_test PRIVATE
    kvkit_mini_engine_metrics nlohmann_json::nlohmann_json)
  target_compile_definitions(kvkit_metrics_metrics_scrape_test PRIVATE
    "KVKIT_TEST_PYTHON=\"${KVKIT_TEST_PYTHON}\""
    "KVKIT_METRICS_SCRAPER=\"${_dir}/scrape.py\"")
  if(NOT MSVC)
    target_compile_options(kvkit_metrics_metrics_scrape_test PRIVATE "$<$<CONFIG:Debug>:-O2>")
  endif()
endfunction()
