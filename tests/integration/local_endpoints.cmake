# Local endpoints in the policy catalogue (agent/identity/local_endpoints, agent/cli/policy_context): a fake pod
# made of a network namespace with a veth pair and IPv4/IPv6 addresses, a fake kubelet tree and a pod cgroup,
# with a listener inside; the node's catalogue must know the pod's service with its addresses and port.
hs_test(NAME local_endpoints_integration_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/local_endpoints_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 120)
add_dependencies(local_endpoints_integration_test hs_peer)
