# The agent's /metrics and event file under a scripted workload, and the policy collector against real iptables
# in a namespace (label: privileged).
hs_test(NAME metrics_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
        LIBS hs_agent hs_exporters LABELS privileged TIMEOUT 300)
add_dependencies(metrics_test hostscope hs_peer)
