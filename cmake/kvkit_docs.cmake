# Doxygen HTML documentation: target 'docs' (part of 'all' when KVKIT_BUILD_DOCS=ON).
# Warnings are errors: every public entity must be documented.
include_guard(GLOBAL)

find_package(Doxygen QUIET OPTIONAL_COMPONENTS dot)
if(NOT DOXYGEN_FOUND)
  message(FATAL_ERROR
    "kvkit: Doxygen not found (needed because KVKIT_BUILD_DOCS=ON). Install the Debian package "
    "doxygen (and graphviz for diagrams), or configure with -DKVKIT_BUILD_DOCS=OFF.")
endif()

set(KVKIT_DOCS_OUTPUT_DIR "${PROJECT_BINARY_DIR}/docs")

# Inputs: public headers (detail/ is excluded in the Doxyfile), guides and the README.
set(_kvkit_doc_inputs "")
foreach(_path
    "${PROJECT_SOURCE_DIR}/README.md"
    "${PROJECT_SOURCE_DIR}/CONTRIBUTING.md"
    "${PROJECT_SOURCE_DIR}/include"
    "${PROJECT_SOURCE_DIR}/policies"
    "${PROJECT_SOURCE_DIR}/cuda/kvkit"
    "${PROJECT_SOURCE_DIR}/docs")
  if(EXISTS "${_path}")
    list(APPEND _kvkit_doc_inputs "${_path}")
  endif()
endforeach()
set(KVKIT_DOXYGEN_INPUT "")
foreach(_path IN LISTS _kvkit_doc_inputs)
  string(APPEND KVKIT_DOXYGEN_INPUT " \\\n                         \"${_path}\"")
endforeach()

if(EXISTS "${PROJECT_SOURCE_DIR}/README.md")
  set(KVKIT_DOXYGEN_MAINPAGE "${PROJECT_SOURCE_DIR}/README.md")
else()
  set(KVKIT_DOXYGEN_MAINPAGE "")
endif()
if(TARGET Doxygen::dot)
  set(KVKIT_DOXYGEN_HAVE_DOT YES)
  get_target_property(KVKIT_DOXYGEN_DOT_PATH Doxygen::dot IMPORTED_LOCATION)
  get_filename_component(KVKIT_DOXYGEN_DOT_PATH "${KVKIT_DOXYGEN_DOT_PATH}" DIRECTORY)
else()
  set(KVKIT_DOXYGEN_HAVE_DOT NO)
  set(KVKIT_DOXYGEN_DOT_PATH "")
endif()

configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${KVKIT_DOCS_OUTPUT_DIR}/Doxyfile" @ONLY)

file(GLOB_RECURSE _kvkit_doc_files CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/include/*.hpp"
  "${PROJECT_SOURCE_DIR}/include/*.cuh"
  "${PROJECT_SOURCE_DIR}/policies/*.hpp"
  "${PROJECT_SOURCE_DIR}/cuda/kvkit/*.hpp"
  "${PROJECT_SOURCE_DIR}/cuda/kvkit/*.cuh"
  "${PROJECT_SOURCE_DIR}/docs/*.md")
foreach(_md README.md CONTRIBUTING.md)
  if(EXISTS "${PROJECT_SOURCE_DIR}/${_md}")
    list(APPEND _kvkit_doc_files "${PROJECT_SOURCE_DIR}/${_md}")
  endif()
endforeach()

# The stamp is written only after doxygen succeeds, so a failed run is repeated next build.
set(_stamp "${KVKIT_DOCS_OUTPUT_DIR}/docs.stamp")
add_custom_command(
  OUTPUT "${_stamp}"
  COMMAND "${CMAKE_COMMAND}" -E rm -f "${_stamp}"
  COMMAND Doxygen::doxygen "${KVKIT_DOCS_OUTPUT_DIR}/Doxyfile"
  COMMAND "${CMAKE_COMMAND}" -E touch "${_stamp}"
  DEPENDS "${KVKIT_DOCS_OUTPUT_DIR}/Doxyfile" ${_kvkit_doc_files}
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  COMMENT "Doxygen: ${KVKIT_DOCS_OUTPUT_DIR}/html/index.html (warnings are errors)"
  VERBATIM)
add_custom_target(docs ALL DEPENDS "${_stamp}")
