# Policy enforcement benchmark (a program, not a test): apply time and connection rate inside network
# namespaces it creates; run as root by scripts/bench-policy.sh.
add_executable(hs_bench_policy_apply ${CMAKE_CURRENT_SOURCE_DIR}/bench/policy_apply.cpp)
target_link_libraries(hs_bench_policy_apply PRIVATE hs_policy Threads::Threads)
set_target_properties(hs_bench_policy_apply PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
# `policy plan --impact` judging time over observed edges (no root); run by scripts/bench-impact.sh.
add_executable(hs_bench_policy_impact ${CMAKE_CURRENT_SOURCE_DIR}/bench/policy_impact.cpp)
target_link_libraries(hs_bench_policy_impact PRIVATE hs_policy)
set_target_properties(hs_bench_policy_impact PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
