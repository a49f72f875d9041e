# Benchmarks are programs, not tests: built with the suite, run by scripts/bench-*.sh.
add_executable(hs_bench_churn ${CMAKE_CURRENT_SOURCE_DIR}/bench/churn.cpp)
target_link_libraries(hs_bench_churn PRIVATE PkgConfig::LIBBPF Threads::Threads)
set_target_properties(hs_bench_churn PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

add_executable(hs_bench_agent ${CMAKE_CURRENT_SOURCE_DIR}/bench/agent_bench.cpp)
target_link_libraries(hs_bench_agent PRIVATE hs_agent Threads::Threads)
set_target_properties(hs_bench_agent PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# The standing memory check (issue 15, item 5): a short run of hs_bench_agent that fails when the agent's RSS passes
# 64 MiB or the kernel loses an event. docs/testing.md has the full-size run.
add_test(NAME agent_memory_check
         COMMAND hs_bench_agent --hostscope $<TARGET_FILE:hostscope> --config ${CMAKE_SOURCE_DIR}/tests/bench/agent-bench.yaml
                 --latency-n 50 --churn-n 200000 --edges 20000 --max-rss-mib 64)
set_tests_properties(agent_memory_check PROPERTIES LABELS privileged TIMEOUT 300 SKIP_RETURN_CODE 77)
