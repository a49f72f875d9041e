# The cluster view's untrusted input: Prometheus query replies, their series and the join.
pkg_check_modules(FUZZ_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
hs_fuzz(NAME fuzz_prometheus
        SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_prometheus.cpp
                ${CMAKE_SOURCE_DIR}/agent/cluster/prometheus.cpp
                ${CMAKE_SOURCE_DIR}/agent/cluster/series.cpp
                ${CMAKE_SOURCE_DIR}/agent/cluster/join.cpp
        LIBS hs_common PkgConfig::FUZZ_HTTPLIB spdlog::spdlog fmt::fmt nlohmann_json::nlohmann_json)
