add_executable(hs_peer ${CMAKE_CURRENT_SOURCE_DIR}/integration/peer/hs_peer.cpp)
set_target_properties(hs_peer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

hs_test(NAME tcp_lifecycle_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/tcp_lifecycle_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
add_dependencies(tcp_lifecycle_test hs_peer)
