#pragma once
// Crafted executables for the ELF readers' bounds (issue 15), shared by the unit and privileged tests.
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace hostscope::testing {

// A copy of /bin/sleep (still runnable: the loader reads program headers only) whose ELF header claims
// e_shentsize = e_shnum = 65535, extended as a sparse file to shoff + 65535 x 65535 bytes so the claimed
// section header table lies inside it: 4.29 GB on paper, 44 KB on disk.
inline std::filesystem::path make_section_header_bomb(const std::filesystem::path& dir) {
  std::ifstream in("/bin/sleep", std::ios::binary);
  std::vector<char> img{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (img.size() < sizeof(Elf64_Ehdr) || img[EI_CLASS] != ELFCLASS64) throw std::runtime_error("/bin/sleep is not ELF64");
  Elf64_Ehdr eh;
  std::memcpy(&eh, img.data(), sizeof(eh));
  eh.e_shentsize = 0xffff;
  eh.e_shnum = 0xffff;
  std::memcpy(img.data(), &eh, sizeof(eh));
  const auto p = dir / "sleep-shbomb";
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(img.data(), static_cast<std::streamsize>(img.size()));
  }
  if (::truncate(p.c_str(), static_cast<off_t>(eh.e_shoff + 0xffffull * 0xffff)) != 0)
    throw std::runtime_error("truncate " + p.string() + " failed");
  ::chmod(p.c_str(), 0755);
  return p;
}

}  // namespace hostscope::testing
