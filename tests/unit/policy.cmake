# Policy library unit tests (no root): loader + lint messages, compiler golden output, reference
# evaluator truth tables, plan diff, backend flow against a fake iptables, CLI exit codes.
hs_test(NAME policy_lint_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_lint_test.cpp LIBS hs_policy LABELS unit)
target_compile_definitions(policy_lint_test PRIVATE HOSTSCOPE_TESTDATA="${CMAKE_CURRENT_LIST_DIR}/policy_testdata")
hs_test(NAME policy_compile_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_compile_test.cpp LIBS hs_policy LABELS unit)
target_compile_definitions(policy_compile_test PRIVATE HOSTSCOPE_TESTDATA="${CMAKE_CURRENT_LIST_DIR}/policy_testdata")
hs_test(NAME policy_generate_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_generate_test.cpp LIBS hs_policy LABELS unit)
# Policy verdicts on topology edges (`top`/`topology` marks) and the stored IR they are computed from.
hs_test(NAME policy_marks_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_marks_test.cpp LIBS hs_agent LABELS unit)
# `policy diff`: semantic diff of two sets on their rules' atoms.
hs_test(NAME policy_diff_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_diff_test.cpp LIBS hs_policy LABELS unit)
# `policy plan --impact`: observed edges judged by the generation in force and the planned one.
hs_test(NAME policy_impact_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_impact_test.cpp LIBS hs_policy LABELS unit)
# `policy export`: the set as Kubernetes NetworkPolicy / CiliumNetworkPolicy, notes for what cannot be expressed.
hs_test(NAME policy_export_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_export_test.cpp LIBS hs_policy LABELS unit)
