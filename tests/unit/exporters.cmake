# Exporters (no root): exposition of real topology-store snapshots, series cap, expiry, event sink rotation and
# back-pressure, promtool check metrics on generated output, and the Grafana dashboard's queries.
hs_test(NAME exporters_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/exporters_test.cpp LIBS hs_agent hs_exporters LABELS unit)
hs_test(NAME exporters_config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/exporters_config_test.cpp LIBS hs_agent LABELS unit)
# Every PromQL query of the Grafana dashboard and of docs/metrics.md, run on a real Prometheus (loopback, temporary
# TSDB backfilled with two nodes' series) by scripts/check-dashboard-promql.py: syntax, join matching, and the node
# graph's cross-node naming. No root.
# prometheus and promtool come with scripts/setup.sh, like the promtool exporters_test runs.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME dashboard_promql COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/check-dashboard-promql.py
         ${CMAKE_SOURCE_DIR})
set_tests_properties(dashboard_promql PROPERTIES LABELS unit TIMEOUT 120)
