hs_test(NAME doctor_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/doctor_test.cpp LIBS hs_agent LABELS unit)
hs_test(NAME packaging_files_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/packaging_files_test.cpp LIBS hs_agent LABELS unit)
