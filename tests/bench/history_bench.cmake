# Topology history benchmark (a program, not a test; no root): write cost, a synthetic 7-day store and the reads of
# `topology --at` and of a diff; docs/benchmarks.md ("Topology history") has the command.
add_executable(hs_bench_history ${CMAKE_CURRENT_SOURCE_DIR}/bench/history_bench.cpp)
target_link_libraries(hs_bench_history PRIVATE hs_history CLI11::CLI11)
target_include_directories(hs_bench_history PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/tests)
set_target_properties(hs_bench_history PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
