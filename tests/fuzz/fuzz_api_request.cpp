// libFuzzer: one request line as a client of the local API would send it, through the request parser and the
// parameter parsers of every method. Client errors must come back as errors (Result or ApiError), never as a crash,
// another exception type, or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/daemon/api_request.h"

using namespace hostscope::daemon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;  // the server refuses longer lines before parsing
  auto req = parse_api_request(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!req) return 0;
  try {
    (void)topology_filter_from_json(req->params, 1'700'000'000'000'000'000ull);
  } catch (const ApiError&) {
  }
  try {
    (void)stream_filter_from_json(req->params);
  } catch (const ApiError&) {
  }
  return 0;
}
