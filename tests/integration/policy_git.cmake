# Policy from Git, for real: bare repositories made with the git CLI, iptables inside a network namespace the test
# owns, the reconciler driven directly for every failure mode and the `hostscope agent` binary end to end.
hs_test(NAME policy_git_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_git_test.cpp
        LIBS hs_policy hs_agent LABELS privileged TIMEOUT 600)
add_dependencies(policy_git_test hostscope)
