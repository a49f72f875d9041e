# Policy enforcement for real, inside network namespaces the tests create (label: privileged).
hs_test(NAME policy_conformance_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_conformance_test.cpp
        LIBS hs_policy LABELS privileged TIMEOUT 900)
# Crash consistency: the real `hostscope policy apply|rollback|flush` killed (SIGKILL) at each step and at random
# times inside a network namespace the test creates; the next command must leave exactly one generation in force.
hs_test(NAME policy_crash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_crash_test.cpp
        LIBS hs_policy nlohmann_json::nlohmann_json LABELS privileged TIMEOUT 900)
add_dependencies(policy_crash_test hostscope)
