// Linked into every fuzz target (tests/fuzz/meson.build): libFuzzer calls LLVMFuzzerInitialize
// once before the first input.
//
// The broker's code logs connection events (a refused or accepted CONNECT, a protocol violation)
// at info; a target that drives it logs a line per input, which at thousands of inputs per second
// fills the campaign logs (hundreds of MB) and spends the time formatting and writing. Findings
// are reported by aborts and sanitizer reports, never by log lines, so logging is off.
#include "common/log.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  ringmq::SilenceLogs();
  return 0;
}
