# Conntrack DNAT resolution against the real kernel, inside a network namespace the test creates (label: privileged).
if(NOT TARGET PkgConfig::NFCT)
  pkg_check_modules(NFCT REQUIRED IMPORTED_TARGET libnetfilter_conntrack)
endif()
hs_test(NAME conntrack_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/conntrack_test.cpp
        LIBS hs_topology PkgConfig::NFCT LABELS privileged TIMEOUT 120)
