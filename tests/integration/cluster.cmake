# The cluster view end to end (label: privileged): the real agent and a fixture second node scraped by Debian's
# Prometheus, a cross-node workload, and `hostscope topology --cluster` joining both nodes' views into one edge.
hs_test(NAME cluster_integration_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster_test.cpp
        LIBS hs_agent hs_cluster LABELS privileged TIMEOUT 300)
add_dependencies(cluster_integration_test hostscope hs_peer)
