# Third-party dependencies: xxHash (always), GoogleTest (tests), Google Benchmark (benchmarks).
#
# GoogleTest and Google Benchmark come from the installed Debian packages (find_package), or,
# for machines without those packages or without network access, from a local source tree
# named by KVKIT_GTEST_SOURCE_DIR / KVKIT_BENCHMARK_SOURCE_DIR (built with FetchContent, which
# never downloads anything here because FETCHCONTENT_SOURCE_DIR_<NAME> points at that tree).
include_guard(GLOBAL)

# --- xxHash (header-only use; the headers define XXH_INLINE_ALL before including it) ----------
find_path(KVKIT_XXHASH_INCLUDE_DIR
  NAMES xxhash.h
  DOC "Folder that holds xxhash.h (Debian package libxxhash-dev)")
if(NOT KVKIT_XXHASH_INCLUDE_DIR)
  message(FATAL_ERROR
    "kvkit: xxhash.h not found. Install the Debian package libxxhash-dev "
    "(apt-get install libxxhash-dev) or set KVKIT_XXHASH_INCLUDE_DIR to the folder holding xxhash.h.")
endif()
if(NOT TARGET kvkit_xxhash)
  # Build-tree only; the installed kvkitConfig.cmake re-finds xxhash.h and defines kvkit::xxhash.
  add_library(kvkit_xxhash INTERFACE)
  target_include_directories(kvkit_xxhash SYSTEM INTERFACE "${KVKIT_XXHASH_INCLUDE_DIR}")
endif()

include(FetchContent)

# kvkit_use_local_source(<name> <dir> <cache var>)
# Builds the CMake project in <dir> as part of this build, without downloading anything.
function(kvkit_use_local_source name dir var)
  if(NOT EXISTS "${dir}/CMakeLists.txt")
    message(FATAL_ERROR "kvkit: ${var}='${dir}' is not a CMake source tree (no CMakeLists.txt).")
  endif()
  string(TOUPPER "${name}" _upper)
  set(FETCHCONTENT_SOURCE_DIR_${_upper} "${dir}")
  # Let the options set below win over option() defaults inside the subproject.
  set(CMAKE_POLICY_DEFAULT_CMP0077 NEW)
  FetchContent_Declare(${name} SOURCE_DIR "${dir}")
  FetchContent_MakeAvailable(${name})
endfunction()

# Provides GTest::gtest and GTest::gtest_main.
function(kvkit_find_gtest)
  if(TARGET GTest::gtest_main)
    return()
  endif()
  if(KVKIT_GTEST_SOURCE_DIR)
    set(INSTALL_GTEST OFF)
    set(BUILD_GMOCK OFF)
    set(gtest_force_shared_crt ON)
    kvkit_use_local_source(googletest "${KVKIT_GTEST_SOURCE_DIR}" KVKIT_GTEST_SOURCE_DIR)
    if(NOT TARGET GTest::gtest_main)
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
    return()
  endif()
  find_package(GTest QUIET)
  if(NOT TARGET GTest::gtest_main)
    message(FATAL_ERROR
      "kvkit: GoogleTest not found (needed because KVKIT_BUILD_TESTS=ON). Install the Debian "
      "package libgtest-dev, or set KVKIT_GTEST_SOURCE_DIR to a GoogleTest source tree "
      "(e.g. -DKVKIT_GTEST_SOURCE_DIR=/usr/src/googletest or .deps/googletest), "
      "or configure with -DKVKIT_BUILD_TESTS=OFF.")
  endif()
endfunction()

# Provides benchmark::benchmark and benchmark::benchmark_main.
function(kvkit_find_benchmark)
  if(TARGET benchmark::benchmark_main)
    return()
  endif()
  if(KVKIT_BENCHMARK_SOURCE_DIR)
    set(BENCHMARK_ENABLE_TESTING OFF)
    set(BENCHMARK_ENABLE_GTEST_TESTS OFF)
    set(BENCHMARK_ENABLE_INSTALL OFF)
    set(BENCHMARK_INSTALL_DOCS OFF)
    set(BENCHMARK_ENABLE_WERROR OFF)
    set(BENCHMARK_DOWNLOAD_DEPENDENCIES OFF)
    kvkit_use_local_source(benchmark "${KVKIT_BENCHMARK_SOURCE_DIR}" KVKIT_BENCHMARK_SOURCE_DIR)
    return()
  endif()
  find_package(benchmark QUIET CONFIG)
  if(NOT TARGET benchmark::benchmark_main)
    message(FATAL_ERROR
      "kvkit: Google Benchmark not found (needed because KVKIT_BUILD_BENCHMARKS=ON). Install the "
      "Debian package libbenchmark-dev, or set KVKIT_BENCHMARK_SOURCE_DIR to a Google Benchmark "
      "source tree (e.g. -DKVKIT_BENCHMARK_SOURCE_DIR=.deps/benchmark), "
      "or configure with -DKVKIT_BUILD_BENCHMARKS=OFF.")
  endif()
endfunction()
