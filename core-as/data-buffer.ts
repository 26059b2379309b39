// Data buffers (request payloads, chunk copies, metadata areas) start on a 64-byte cache line.
// Hosts fill and drain them with the kernel's copies (pread into them, send from them), which
// run at about half speed when a buffer sits 16 bytes off a line, as the heap's blocks do:
// reading 1 GiB from the page cache as 256 KiB preads took 0.10 s into aligned buffers and
// 0.17 s at +16 bytes (docs/performance.md, "NBD server").
// A block keeps its heap address in the word just before the aligned start.

const LINE: usize = 64;
const WORD: usize = sizeof<usize>();

/** `bytes` of memory starting on a cache line, or 0 when the heap cannot grow. */
export function allocData(bytes: usize): usize {
  const raw = heap.alloc(bytes + LINE + WORD);
  if (raw == 0) return 0;
  const ptr = (raw + WORD + LINE - 1) & ~(LINE - 1);
  store<usize>(ptr - WORD, raw);
  return ptr;
}

/** Releases a block from allocData. */
export function freeData(ptr: usize): void {
  heap.free(load<usize>(ptr - WORD));
}
