// Keeps the server's resident memory to what it uses while serving. Call from any thread.
#pragma once

namespace lai::server {

// Drops the executable's code pages from this process's page tables and maps them back one page
// at a time as they are executed (MADV_RANDOM turns off fault-around, which
// would otherwise map 64 KiB around every page touched). Code used only at start-up — flag
// parsing, configuration, benchmarks — then stops counting against the server's RSS. Harmless
// if it fails (the kernel refuses, or the binary is not static).
void TrimResidentCode();

}  // namespace lai::server
