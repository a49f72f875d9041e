hs_test(NAME events_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/events_test.cpp LIBS hs_agent LABELS unit)
