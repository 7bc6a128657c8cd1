# kvkit::redis - the Redis tier (<kvkit/tiers/redis_tier.hpp>): header-only, over hiredis (Debian
# package libhiredis-dev). Optional: KVKIT_ENABLE_REDIS=AUTO builds it when hiredis is found.
# Its tests and benchmarks also need the redis-server program (Debian package redis-server).
include_guard(GLOBAL)

set(KVKIT_ENABLE_REDIS "AUTO" CACHE STRING
  "Build the Redis tier target kvkit::redis: AUTO (if hiredis is found), ON (required) or OFF")
set_property(CACHE KVKIT_ENABLE_REDIS PROPERTY STRINGS AUTO ON OFF)

# kvkit_add_redis_target(<out_var>)
# Defines kvkit_redis (alias kvkit::redis) when hiredis is found and KVKIT_ENABLE_REDIS allows;
# sets <out_var> to TRUE or FALSE, and KVKIT_REDIS_SERVER to the redis-server program (or empty).
function(kvkit_add_redis_target out_var)
  if(NOT KVKIT_ENABLE_REDIS MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR
      "kvkit: KVKIT_ENABLE_REDIS must be AUTO, ON or OFF, got '${KVKIT_ENABLE_REDIS}'.")
  endif()
  set(${out_var} FALSE PARENT_SCOPE)
  if(KVKIT_ENABLE_REDIS STREQUAL "OFF")
    return()
  endif()
  find_path(KVKIT_HIREDIS_INCLUDE_DIR NAMES hiredis/hiredis.h
    DOC "Folder that holds hiredis/hiredis.h (Debian package libhiredis-dev)")
  find_library(KVKIT_HIREDIS_LIBRARY NAMES hiredis
    DOC "The hiredis library (Debian package libhiredis-dev)")
  if(NOT KVKIT_HIREDIS_INCLUDE_DIR OR NOT KVKIT_HIREDIS_LIBRARY)
    if(KVKIT_ENABLE_REDIS STREQUAL "ON")
      message(FATAL_ERROR
        "kvkit: KVKIT_ENABLE_REDIS=ON but hiredis was not found. Install the Debian package "
        "libhiredis-dev (apt-get install libhiredis-dev), set KVKIT_HIREDIS_INCLUDE_DIR and "
        "KVKIT_HIREDIS_LIBRARY, or configure with -DKVKIT_ENABLE_REDIS=AUTO or OFF.")
    endif()
    message(STATUS "kvkit: hiredis not found: the Redis tier (kvkit::redis) is not built "
      "(install libhiredis-dev)")
    return()
  endif()
  if(NOT TARGET kvkit_hiredis)
    # Build-tree only; the installed kvkitConfig.cmake finds hiredis again as kvkit::hiredis.
    add_library(kvkit_hiredis INTERFACE)
    target_include_directories(kvkit_hiredis SYSTEM INTERFACE "${KVKIT_HIREDIS_INCLUDE_DIR}")
    target_link_libraries(kvkit_hiredis INTERFACE "${KVKIT_HIREDIS_LIBRARY}")
  endif()
  add_library(kvkit_redis INTERFACE)
  add_library(kvkit::redis ALIAS kvkit_redis)
  set_target_properties(kvkit_redis PROPERTIES EXPORT_NAME redis)
  target_link_libraries(kvkit_redis INTERFACE kvkit
    "$<BUILD_INTERFACE:kvkit_hiredis>"
    "$<INSTALL_INTERFACE:kvkit::hiredis>")
  find_program(KVKIT_REDIS_SERVER redis-server
    DOC "redis-server, started by the Redis tier's tests and benchmarks (Debian package redis-server)")
  if(NOT KVKIT_REDIS_SERVER)
    message(STATUS "kvkit: redis-server not found: the Redis tier's tests and benchmarks are not "
      "built (install redis-server)")
  endif()
  set(${out_var} TRUE PARENT_SCOPE)
endfunction()
