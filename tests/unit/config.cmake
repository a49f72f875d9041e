hs_test(NAME config_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/config_test.cpp LIBS hs_agent LABELS unit)
