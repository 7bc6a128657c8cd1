# Helpers for kvkit's own targets (tests, benchmarks, examples). Nothing here touches
# directory-wide flags: every setting is applied to one target at a time, so projects that
# consume kvkit (add_subdirectory, find_package) never inherit kvkit's warnings or sanitizers.
include_guard(GLOBAL)

set(KVKIT_KNOWN_SANITIZERS address undefined leak thread memory)

# Turns KVKIT_SANITIZE ("address,undefined" or "address;undefined") into a list in <out_var>.
function(kvkit_sanitizer_list out_var)
  string(REPLACE "," ";" _list "${KVKIT_SANITIZE}")
  set(_result "")
  foreach(_s IN LISTS _list)
    string(STRIP "${_s}" _s)
    string(TOLOWER "${_s}" _s)
    if(NOT _s STREQUAL "")
      list(APPEND _result "${_s}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _result)
  set(${out_var} "${_result}" PARENT_SCOPE)
endfunction()

# Fails the configuration early when KVKIT_SANITIZE names an unknown or impossible combination.
function(kvkit_validate_sanitizers)
  kvkit_sanitizer_list(_list)
  if(NOT _list)
    return()
  endif()
  foreach(_s IN LISTS _list)
    if(NOT _s IN_LIST KVKIT_KNOWN_SANITIZERS)
      list(JOIN KVKIT_KNOWN_SANITIZERS ", " _known)
      message(FATAL_ERROR
        "kvkit: KVKIT_SANITIZE contains '${_s}'. Accepted values (comma separated): ${_known}.")
    endif()
  endforeach()
  if("thread" IN_LIST _list AND ("address" IN_LIST _list OR "leak" IN_LIST _list))
    message(FATAL_ERROR "kvkit: KVKIT_SANITIZE: 'thread' cannot be combined with 'address' or 'leak'.")
  endif()
  if("memory" IN_LIST _list AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "kvkit: KVKIT_SANITIZE: 'memory' needs Clang (CMAKE_CXX_COMPILER).")
  endif()
  if(MSVC AND NOT _list STREQUAL "address")
    message(FATAL_ERROR "kvkit: KVKIT_SANITIZE: MSVC supports only 'address'.")
  endif()
endfunction()

# kvkit_target_options(<target>)
# Applies kvkit's warning policy (-Wall -Wextra -Wpedantic -Werror) and KVKIT_SANITIZE to one of
# kvkit's own executables. Never used on kvkit::kvkit or kvkit::cuda.
function(kvkit_target_options target)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  if(MSVC)
    target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:/W4;/WX;/permissive->")
  else()
    target_compile_options(${target} PRIVATE
      "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra;-Wpedantic;-Werror>"
      "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Werror;-Werror=all-warnings>")
  endif()

  kvkit_sanitizer_list(_sanitizers)
  if(_sanitizers)
    list(JOIN _sanitizers "," _joined)
    if(MSVC)
      target_compile_options(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:/fsanitize=address>")
    else()
      set(_flags "-fsanitize=${_joined}" "-fno-omit-frame-pointer")
      if("undefined" IN_LIST _sanitizers)
        list(APPEND _flags "-fno-sanitize-recover=undefined")
      endif()
      list(JOIN _flags "," _xcompiler)
      target_compile_options(${target} PRIVATE
        "$<$<COMPILE_LANGUAGE:CXX>:${_flags}>"
        "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${_xcompiler}>")
      target_link_options(${target} PRIVATE
        "$<$<LINK_LANGUAGE:CXX>:${_flags}>"
        "$<$<LINK_LANGUAGE:CUDA>:-Xcompiler=${_xcompiler}>")
    endif()
  endif()
endfunction()
