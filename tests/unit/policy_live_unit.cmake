# Pure parts of `policy test --live`: cgroup mirroring and the per-case verdict summary (label: unit).
hs_test(NAME policy_live_unit_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/policy_live_unit_test.cpp
        LIBS hs_policy LABELS unit TIMEOUT 60)
