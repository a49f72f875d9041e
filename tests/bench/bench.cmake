# Benchmarks are programs, not tests: built with the suite, run by scripts/bench-*.sh.
add_executable(hs_bench_churn ${CMAKE_CURRENT_SOURCE_DIR}/bench/churn.cpp)
target_link_libraries(hs_bench_churn PRIVATE PkgConfig::LIBBPF Threads::Threads)
set_target_properties(hs_bench_churn PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

add_executable(hs_bench_agent ${CMAKE_CURRENT_SOURCE_DIR}/bench/agent_bench.cpp)
target_link_libraries(hs_bench_agent PRIVATE hs_agent Threads::Threads)
set_target_properties(hs_bench_agent PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
