# Optional components, each built only when its Debian packages are found:
#
#   kvkit::vllm_hashing  INTERFACE  <kvkit/vllm_hashing.hpp>: vLLM-compatible block hashes
#                                   (SHA-256 from OpenSSL; Debian package libssl-dev)
#   kvkit::events        STATIC     <kvkit/events/...>: vLLM's KV-event wire format and the ZeroMQ
#                                   publisher (Debian packages libzmq3-dev, libmsgpack-cxx-dev)
#
# KVKIT_ENABLE_VLLM_HASHING / KVKIT_ENABLE_EVENTS: AUTO (build when found), ON (required), OFF.
# Sets KVKIT_VLLM_HASHING_ENABLED and KVKIT_EVENTS_ENABLED.
include_guard(GLOBAL)

set(KVKIT_ENABLE_VLLM_HASHING "AUTO" CACHE STRING
  "Build kvkit::vllm_hashing (needs OpenSSL's libcrypto): AUTO, ON (required) or OFF")
set_property(CACHE KVKIT_ENABLE_VLLM_HASHING PROPERTY STRINGS AUTO ON OFF)
set(KVKIT_ENABLE_EVENTS "AUTO" CACHE STRING
  "Build kvkit::events (needs libzmq and msgpack-cxx): AUTO, ON (required) or OFF")
set_property(CACHE KVKIT_ENABLE_EVENTS PROPERTY STRINGS AUTO ON OFF)

foreach(_option IN ITEMS KVKIT_ENABLE_VLLM_HASHING KVKIT_ENABLE_EVENTS)
  if(NOT ${_option} MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "kvkit: ${_option} is '${${_option}}'; accepted values: AUTO, ON, OFF")
  endif()
endforeach()

# kvkit_optional_missing(<option> <component> <what is missing>)
# Fails when the component was required (ON); otherwise says it is skipped.
function(kvkit_optional_missing option component missing)
  if(${option} STREQUAL "ON")
    message(FATAL_ERROR "kvkit: ${component} needs ${missing} (${option}=ON). Install it, or "
      "configure with -D${option}=AUTO (skip when absent) or OFF.")
  endif()
  message(STATUS "  ${component}: not built (${missing} not found)")
endfunction()

# --- kvkit::vllm_hashing ------------------------------------------------------------------------
set(KVKIT_VLLM_HASHING_ENABLED FALSE)
if(NOT KVKIT_ENABLE_VLLM_HASHING STREQUAL "OFF")
  find_package(OpenSSL QUIET COMPONENTS Crypto)
  if(TARGET OpenSSL::Crypto)
    add_library(kvkit_vllm_hashing INTERFACE)
    add_library(kvkit::vllm_hashing ALIAS kvkit_vllm_hashing)
    set_target_properties(kvkit_vllm_hashing PROPERTIES EXPORT_NAME vllm_hashing)
    target_link_libraries(kvkit_vllm_hashing INTERFACE kvkit OpenSSL::Crypto)
    set(KVKIT_VLLM_HASHING_ENABLED TRUE)
    message(STATUS "  kvkit::vllm_hashing: OpenSSL ${OPENSSL_VERSION}")
  else()
    kvkit_optional_missing(KVKIT_ENABLE_VLLM_HASHING kvkit::vllm_hashing
      "OpenSSL's libcrypto (Debian package libssl-dev)")
  endif()
endif()

# --- kvkit::events ------------------------------------------------------------------------------
set(KVKIT_EVENTS_ENABLED FALSE)
if(NOT KVKIT_ENABLE_EVENTS STREQUAL "OFF")
  find_path(KVKIT_ZMQ_INCLUDE_DIR NAMES zmq.h DOC "Folder holding zmq.h (Debian: libzmq3-dev)")
  find_library(KVKIT_ZMQ_LIBRARY NAMES zmq DOC "libzmq (Debian: libzmq3-dev)")
  find_path(KVKIT_MSGPACK_INCLUDE_DIR NAMES msgpack.hpp
    DOC "Folder holding msgpack.hpp (Debian: libmsgpack-cxx-dev)")
  set(_missing "")
  if(NOT KVKIT_ZMQ_INCLUDE_DIR OR NOT KVKIT_ZMQ_LIBRARY)
    list(APPEND _missing "libzmq (Debian package libzmq3-dev)")
  endif()
  if(NOT KVKIT_MSGPACK_INCLUDE_DIR)
    list(APPEND _missing "msgpack-cxx (Debian package libmsgpack-cxx-dev)")
  endif()
  if(_missing)
    list(JOIN _missing " and " _missing)
    kvkit_optional_missing(KVKIT_ENABLE_EVENTS kvkit::events "${_missing}")
  else()
    find_package(Threads REQUIRED)
    if(NOT TARGET kvkit_zmq)
      # Build-tree only; the installed kvkitConfig.cmake finds libzmq again (kvkit::zmq).
      add_library(kvkit_zmq INTERFACE)
      target_include_directories(kvkit_zmq SYSTEM INTERFACE "${KVKIT_ZMQ_INCLUDE_DIR}")
      target_link_libraries(kvkit_zmq INTERFACE "${KVKIT_ZMQ_LIBRARY}")
    endif()
    add_library(kvkit_events STATIC
      "${PROJECT_SOURCE_DIR}/src/events/vllm_wire.cpp"
      "${PROJECT_SOURCE_DIR}/src/events/zmq_publisher.cpp")
    add_library(kvkit::events ALIAS kvkit_events)
    set_target_properties(kvkit_events PROPERTIES
      EXPORT_NAME events
      POSITION_INDEPENDENT_CODE ON
      CXX_EXTENSIONS OFF)
    target_compile_features(kvkit_events PUBLIC cxx_std_20)
    # msgpack-cxx is used header-only inside the library (its Boost parts are not needed).
    target_include_directories(kvkit_events SYSTEM PRIVATE "${KVKIT_MSGPACK_INCLUDE_DIR}")
    target_compile_definitions(kvkit_events PRIVATE MSGPACK_NO_BOOST)
    target_link_libraries(kvkit_events
      PUBLIC kvkit Threads::Threads
      PRIVATE "$<BUILD_INTERFACE:kvkit_zmq>" "$<INSTALL_INTERFACE:kvkit::zmq>")
    if(PROJECT_IS_TOP_LEVEL)
      # kvkit's own warning policy and sanitizers (a consumer's add_subdirectory build gets none).
      kvkit_target_options(kvkit_events)
    endif()
    set(KVKIT_EVENTS_ENABLED TRUE)
    message(STATUS "  kvkit::events: libzmq ${KVKIT_ZMQ_LIBRARY}, msgpack-cxx "
      "${KVKIT_MSGPACK_INCLUDE_DIR}")
  endif()
endif()
