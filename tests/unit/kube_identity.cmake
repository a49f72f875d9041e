# Container, Kubernetes and service-name identity (agent/identity: cgroup_identity, kube_meta,
# workload, service_name). No root, no real cgroups: inputs are text and temp-dir trees.
hs_test(NAME cgroup_identity_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/cgroup_identity_test.cpp
        LIBS hs_identity LABELS unit)
hs_test(NAME kube_meta_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/kube_meta_test.cpp
        LIBS hs_identity LABELS unit)
hs_test(NAME service_name_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/service_name_test.cpp
        LIBS hs_identity LABELS unit)
