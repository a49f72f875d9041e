# Local endpoints (agent/identity/local_endpoints): the /proc/PID/net parsers on fixture text, and the cache on a
# fake /proc tree (namespaces as files whose inodes stand for namespaces, fds as socket:[N] links). No root.
hs_test(NAME local_endpoints_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/local_endpoints_test.cpp
        LIBS hs_identity LABELS unit)
# The policy catalogue built from processes and local endpoints (agent/daemon/service_catalogue), shared by
# `hostscope policy` and the agent's reconciler.
hs_test(NAME service_catalogue_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/service_catalogue_test.cpp
        LIBS hs_agent LABELS unit)
