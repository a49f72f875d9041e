hs_test(NAME doctor_integration_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/doctor_integration_test.cpp
        LIBS hs_agent LABELS privileged TIMEOUT 300)
