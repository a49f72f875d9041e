# Builds the .deb (scripts/build-deb.sh --prebuilt), inspects it, runs lintian and systemd-analyze, installs it
# into a fresh debootstrap root (cached in the build directory), runs the service, removes and purges it.
hs_test(NAME package_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/package_test.cpp
        LIBS nlohmann_json::nlohmann_json LABELS privileged TIMEOUT 2400)
