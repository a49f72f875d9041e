# Exporters (no root): exposition of real topology-store snapshots, series cap, expiry, event sink rotation and
# back-pressure, promtool check metrics on generated output, and the Grafana dashboard's queries.
hs_test(NAME exporters_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/exporters_test.cpp LIBS hs_exporters hs_topology LABELS unit)
hs_test(NAME exporters_config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/exporters_config_test.cpp LIBS hs_agent LABELS unit)
