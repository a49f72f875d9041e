# Pipeline stages that need no kernel (no root): the identity resolver's endpoints for the topology.
hs_test(NAME identity_resolver_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/identity_resolver_test.cpp LIBS hs_agent LABELS unit)
