# Topology history (no root, no BPF): the SQLite store (round trip, roll-up and retention on a fake clock, the size
# bound, schema versions, corrupt files, a writer killed mid-write), the writer's bounded queue and the time arguments.
hs_test(NAME history_store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/history_store_test.cpp LIBS hs_history LABELS unit)
hs_test(NAME history_writer_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/history_writer_test.cpp LIBS hs_history LABELS unit)
