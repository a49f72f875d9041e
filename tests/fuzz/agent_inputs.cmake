# The local API's untrusted input: the request line and every method's parameter parser.
hs_fuzz(NAME fuzz_api_request
        SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_api_request.cpp
                ${CMAKE_SOURCE_DIR}/agent/daemon/api_request.cpp
                ${CMAKE_SOURCE_DIR}/common/result.cpp
        LIBS fmt::fmt nlohmann_json::nlohmann_json)
# Identity parsers fed from the host: /proc/<pid>/cgroup, cgroup paths, kubelet log file and pod directory names.
hs_fuzz(NAME fuzz_identity
        SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_identity.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/cgroup_identity.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/kube_meta.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/workload.cpp
                ${CMAKE_SOURCE_DIR}/common/result.cpp
        LIBS fmt::fmt spdlog::spdlog)
