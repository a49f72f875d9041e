hs_test(NAME libbpf_logs_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/libbpf_logs_test.cpp LIBS hs_agent LABELS unit)
