# Go binary identity: build info reader, runtime offsets, identity cache (agent/identity/go_*).
# Builds small Go programs from tests/go at run time (needs the go toolchain and gcc for cgo).
hs_test(NAME go_buildinfo_test
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/go_buildinfo_test.cpp
        LIBS hs_identity
        LABELS unit
        TIMEOUT 600)
