# The live topology end to end (label: privileged): a fresh `hostscope agent` on a simulated node (network
# namespaces, a veth pair and a DNAT rule the tests create), `hostscope topology` in every format, and
# `hostscope top` driven in tmux. Needs root, nsenter, iptables, graphviz (dot) and tmux.
hs_test(NAME topology_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/topology_cli_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
add_dependencies(topology_cli_test hostscope hs_peer)
hs_test(NAME top_tmux_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/top_tmux_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
add_dependencies(top_tmux_test hostscope hs_peer)
# Policy marks on the live topology equal the kernel's verdicts: generate -> enforce -> apply in the simulated node,
# then real connections the kernel allows or drops (issue 14).
hs_test(NAME policy_marks_live_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_marks_live_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
add_dependencies(policy_marks_live_test hostscope hs_peer)
