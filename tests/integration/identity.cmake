# Process identity end to end (bpf/process.bpf.c, agent/bpf/process_tracer, agent/identity/process_table,
# peer_index, resolver, `hostscope services`): real processes, a Go test service built at test time with the
# installed Go toolchain, goroutine ids, a test-created cgroup v2 pod tree with a fake kubelet log layout.
hs_test(NAME identity_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/identity_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 600)
add_dependencies(identity_test hs_peer hostscope)
