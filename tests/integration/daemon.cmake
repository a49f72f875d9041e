hs_test(NAME daemon_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/daemon_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
add_dependencies(daemon_test hostscope hs_peer)
