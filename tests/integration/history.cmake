# Topology history end to end (label: privileged): the real agent with history on, known connections, a restart,
# and `hostscope topology --between/--at` and `history status` reading the file. Needs root and nsenter.
hs_test(NAME history_integration_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/history_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
add_dependencies(history_integration_test hostscope hs_peer)
