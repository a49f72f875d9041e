# Policy from Git without root: the `policy:` config section (file:line:column errors) and the libgit2 source
# (fetch, export of the policy sub-directory, ancestry, SSH signatures, re-clone of a corrupt working copy)
# against bare repositories the test makes with the git CLI.
hs_test(NAME policy_git_unit_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_git_unit_test.cpp LIBS hs_policy hs_agent LABELS unit)
# The reconciler against a fake iptables and a fake service catalogue: a refused commit is tried again when the
# catalogue changes, with a bounded backoff read from a fake clock.
hs_test(NAME policy_reconciler_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_reconciler_test.cpp LIBS hs_policy LABELS unit)
