// Before a read reply's header leaves, the bytes it will send straight from a file (sendfile) or
// from a file's mapping (file_view.h) are made to be in the page cache, so that a disk's read
// error becomes an EIO reply instead of a broken stream. The kernel's copy into the socket
// cannot fail cleanly: once the header is out, a page whose read fails leaves the reply unfinished
// and the connection has to end (sendfile returns EIO, a send from a mapping EFAULT, part way).
//
// How: MADV_POPULATE_READ (Linux 5.14) faults the range in, reading what the cache lacks, and
// reports a failed read as an error where touching the page would raise SIGBUS. Pages the cache
// already holds cost a walk of the page table, no copy. A page evicted between this and the send
// is read again inside the send; its failure then still ends the connection (a narrow window,
// under memory pressure only). On a kernel without MADV_POPULATE_READ nothing is checked.
#pragma once

#include <cstdint>

#include "status.h"

namespace dmkit {

// [data, data + len) of a read-only shared file mapping: in the page cache, or EIO.
Status PagesReadable(const uint8_t* data, uint64_t len);

// [pos, pos + len) of fd's file, through a mapping of its own: in the page cache, or EIO. A file
// that cannot be mapped (not a regular file or block device), or on tmpfs or ramfs (where a read
// fault would fill a hole for good, and nothing fails to read), is not checked.
Status FileRangeReadable(int fd, uint64_t pos, uint64_t len);

}  // namespace dmkit
