# `hostscope policy test --live` end to end with the real binary, as root, in scratch namespaces
# and cgroups the binary creates and removes (label: privileged). The runs with 71 addresses build two
# scratch environments each, hence the longer timeout.
hs_test(NAME policy_live_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_live_test.cpp
        LIBS fmt::fmt LABELS privileged TIMEOUT 600)
