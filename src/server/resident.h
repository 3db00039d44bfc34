// Keeps the server's resident memory to what it uses while serving. Call from any thread.
#pragma once

namespace lai::server {

// Drops the code pages of the executable and of every shared library from this process's page
// tables and maps them back one page at a time as they are executed (MADV_RANDOM turns off
// fault-around, which would otherwise map 64 KiB around every page touched). Code used only at
// start-up — flag parsing, configuration, library initialisers — then stops counting against the
// server's RSS. Only read-only executable private file mappings are touched: they are never
// written, so nothing is lost. Harmless if it fails (the kernel refuses).
void TrimResidentCode();

}  // namespace lai::server
