# Topology store and renderings (no root): aggregation, stitching, bounds, anomalies with an injected clock,
# JSON round trip, Graphviz/Mermaid output and escaping.
hs_test(NAME topology_store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/topology_store_test.cpp LIBS hs_topology LABELS unit)
hs_test(NAME topology_render_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/topology_render_test.cpp LIBS hs_topology LABELS unit)
target_compile_definitions(topology_render_test PRIVATE HOSTSCOPE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
hs_test(NAME topology_diff_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/topology_diff_test.cpp LIBS hs_topology LABELS unit)
