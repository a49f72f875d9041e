# Loader + lint + compile + render of one YAML document (hs_policy is built in the fuzz configure).
hs_fuzz(NAME fuzz_policy SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_policy.cpp LIBS hs_policy)
