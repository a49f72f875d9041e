# Policy enforcement for real, inside network namespaces the tests create (label: privileged).
hs_test(NAME policy_conformance_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_conformance_test.cpp
        LIBS hs_policy LABELS privileged TIMEOUT 900)
