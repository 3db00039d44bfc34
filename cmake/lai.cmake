# Helpers that keep each folder's CMakeLists.txt short.

set(LAI_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers)
if(LAI_WERROR)
  list(APPEND LAI_WARNINGS -Werror)
endif()

if(LAI_SANITIZE)
  add_compile_options(-fsanitize=${LAI_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${LAI_SANITIZE})
endif()

# lai_dependency(NAME sqlite3 ARCHIVE libsqlite3.a FALLBACK SQLite::SQLite3 [LIBS dl m])
# Interface target lai::<NAME>: the Debian static archive when it is installed (with LIBS, what
# the archive itself needs), else FALLBACK, the shared library. Each shared library costs start-up
# time, mapping and relocating it (~0.4 ms here), which every `lapce-ai` command pays.
function(lai_dependency)
  cmake_parse_arguments(ARG "" "NAME;ARCHIVE;FALLBACK" "LIBS" ${ARGN})
  add_library(lai_dep_${ARG_NAME} INTERFACE)
  add_library(lai::${ARG_NAME} ALIAS lai_dep_${ARG_NAME})
  find_library(LAI_${ARG_NAME}_ARCHIVE NAMES ${ARG_ARCHIVE})
  if(LAI_${ARG_NAME}_ARCHIVE)
    target_link_libraries(lai_dep_${ARG_NAME} INTERFACE ${LAI_${ARG_NAME}_ARCHIVE} ${ARG_LIBS})
    target_include_directories(lai_dep_${ARG_NAME} SYSTEM INTERFACE
      $<TARGET_PROPERTY:${ARG_FALLBACK},INTERFACE_INCLUDE_DIRECTORIES>)
  else()
    target_link_libraries(lai_dep_${ARG_NAME} INTERFACE ${ARG_FALLBACK})
  endif()
endfunction()

# lai_library(NAME base SOURCES a.cc b.cc DEPS lai::x PUBLIC_DEPS fmt::fmt)
# Defines static library lai_<NAME> with alias lai::<NAME>; includes start at src/.
function(lai_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(lai_${ARG_NAME} STATIC ${ARG_SOURCES})
  add_library(lai::${ARG_NAME} ALIAS lai_${ARG_NAME})
  target_include_directories(lai_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(lai_${ARG_NAME} PRIVATE ${LAI_WARNINGS})
  target_link_libraries(lai_${ARG_NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# lai_test(NAME ring_test SOURCES ring_test.cc DEPS lai::ipc LABELS unit [TIMEOUT 60])
# One GoogleTest binary; every test case is registered with ctest under the given labels.
function(lai_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT LAI_BUILD_TESTS)
    return()
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_compile_options(${ARG_NAME} PRIVATE ${LAI_WARNINGS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} lai::alloc_hooks GTest::gtest GTest::gtest_main
                        Threads::Threads)
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 30)
endfunction()
