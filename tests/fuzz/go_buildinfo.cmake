# Go build info parser (agent/identity/go_buildinfo.cpp and the ELF reader, modinfo parser and Go quoting it
# uses) on arbitrary in-memory images.
# Seeds: tests/fuzz/corpus/go_buildinfo (written by go_buildinfo_test with HOSTSCOPE_FUZZ_SEED_DIR set).
hs_fuzz(NAME fuzz_go_buildinfo
        SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_go_buildinfo.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/go_buildinfo.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/elf_reader.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/go_modinfo.cpp
                ${CMAKE_SOURCE_DIR}/agent/identity/go_quote.cpp
                ${CMAKE_SOURCE_DIR}/common/result.cpp
        LIBS fmt::fmt)
