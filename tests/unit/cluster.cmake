# The cluster view (no root): Prometheus replies parsed and refused, series assembled with their labels checked, and
# the join of several nodes' series into one topology (cross-node merge, peers without an agent, address reuse), and
# the command's source (--at).
hs_test(NAME cluster_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster_test.cpp LIBS hs_agent hs_cluster hs_topology LABELS unit)
