# Process table and peer index (agent/identity/process_table, peer_index): bounds, eviction, grace periods,
# Go offsets bookkeeping. No root: /proc is a fake tree in a temp dir and the clock is injected.
hs_test(NAME process_table_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/process_table_test.cpp
        LIBS hs_identity LABELS unit)
