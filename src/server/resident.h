// Keeps the server's resident memory to what it uses while serving. Call from any thread.
#pragma once

namespace lai::server {

// Returns the heap's free pages (malloc_trim), then drops the pages of the executable and of every
// shared library that were never written — code, read-only data, symbol tables — from this
// process's page tables. The kernel maps them back from the page cache as they are touched again
// (MADV_RANDOM turns off fault-around; a page still comes back with the rest of its page-cache
// folio, 64 KiB or more on recent kernels). What only start-up used — flag parsing,
// configuration, library initialisers, the dynamic linker's symbol lookups — then stops counting
// against the server's RSS. A private mapping that holds written pages (RELRO after relocation,
// text relocations) is left alone, so nothing is lost. Harmless if it fails (the kernel refuses).
void TrimResidentMemory();

}  // namespace lai::server
