hs_test(NAME json_escape_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/json_escape_test.cpp LIBS hs_common LABELS unit)
