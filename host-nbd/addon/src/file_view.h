// A read-only shared mapping of the bytes of an image file that one published extent reaches
// (write_map.h), so that a receive thread's READ reply is sent straight from the page cache:
// `send` copies the file's pages into the socket once, where `pread` + `send` copied them into the
// thread's buffer first and out of it again. nbdcopy of 1 GiB over TCP took 0.35 s against 0.39 s
// that way, at 0.18 against 0.22 s of server CPU (docs/performance.md, "Reads sent from mapped
// images"). sendfile saves that copy too, but then the client copies out of cold page-cache pages,
// which was slower still; here the kernel's copy into the socket leaves the data warm for it.
//
// Safety: this process never reads the mapping itself; only the kernel does, inside `send`. Past
// the end of the file (an image shortened under us) a page of the mapping has nothing behind it:
// a read of it from user space would raise SIGBUS and end the server, the kernel's copy fails
// with EFAULT instead. Users check the file's size before each use (FileHolds), so a file
// shortened before the request gets the event loop's error reply; one shortened during the send
// breaks that connection's stream (the reply cannot be finished), and only that connection's.
//
// A disk's read error under a mapped page would fail the send the same way (EFAULT, after the
// reply's header left), so the pages are brought in first (readable.h): where that fails, pread
// meets the error and the event loop answers EIO.
//
// Small reads keep pread: the first touch of each page of the mapping costs a page fault, which
// costs more than copying 4 KiB twice (fio 4 KiB random reads: 122k against 131k IOPS).
//
// The mapped pages that replies touched count in the server's resident size (as file pages,
// RssFile), though they are the page cache's and the kernel takes them back under pressure.
#pragma once

#include <cstdint>
#include <memory>

namespace dmkit {

class FileView {
 public:
  // A mapping of fd's file from its start through at least pos + len; null where the file cannot
  // be mapped, lies on tmpfs or ramfs (a read fault there fills a hole for good), or too many
  // files are mapped already (kMaxViews), and the reads go through pread. Extents of one file
  // share one mapping while it covers them: a table of many segments over one image costs one
  // mapping, not one per segment (a process has at most vm.max_map_count, 65530 here, and the
  // JavaScript heap needs them too).
  static std::shared_ptr<const FileView> Map(int fd, uint64_t pos, uint64_t len);
  ~FileView();
  FileView(const FileView&) = delete;
  FileView& operator=(const FileView&) = delete;

  // The bytes [pos, pos + len) of the file inside the mapping, or null where they are not all in it.
  const uint8_t* At(uint64_t pos, uint64_t len) const {
    return len <= len_ && pos <= len_ - len ? base_ + pos : nullptr;
  }

  static constexpr int kMaxViews = 1024;  // files mapped at once, at most

 private:
  FileView(const uint8_t* base, uint64_t len) : base_(base), len_(len) {}
  const uint8_t* const base_;  // file offset 0
  const uint64_t len_;
};

// Whether fd's file holds [pos, pos + len) now (its size reaches pos + len).
bool FileHolds(int fd, uint64_t pos, uint64_t len);

// Whether a piece of the file's [pos, pos + len), cut into `granule`-byte pieces from pos, reads
// as zeroes: read with pread, not through a mapping (see above). A short read (the file is
// shorter) sets *failed.
bool AnyZeroGranule(int fd, uint64_t pos, uint64_t len, uint64_t granule, bool* failed);

}  // namespace dmkit
