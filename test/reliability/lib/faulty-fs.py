#!/usr/bin/python3
# A FUSE filesystem that passes every file of SOURCE through at MOUNTPOINT and fails the I/O a
# test asks it to fail: the kernel then returns EIO to the server's pread, pwrite, fdatasync, or
# the page fault of a mapping, as a disk with a bad sector range would.
#
# Usage: faulty-fs.py [--volatile] SOURCE MOUNTPOINT   (runs in the foreground until unmounted)
#
# Faults are read from SOURCE/.faults.json whenever it changes (write it whole, then rename it
# into place): {"NAME": {"read": [[offset, length], ...], "write": [[offset, length], ...],
# "fsync": true}}. An operation touching one of a file's ranges fails with EIO, as does every
# fsync of it while "fsync" is true. The kernel caches what it read: fail a range before the
# server first reads it. SOURCE/.faults.log gets one line per failed operation.
#
# Volatile mode (faulty-fs.py --volatile SOURCE MOUNTPOINT): a disk with a volatile write cache
# that can lose power. Every write is held in a per-file cache of dirty 4 KiB pages (in this
# process's memory; reads through the mount see it) and not written to SOURCE until that file is
# fsynced or fdatasynced (the kernel sends FUSE fsync for both): then that file's dirty pages are
# written to SOURCE, SOURCE is fdatasynced, and they are clean. The cache is per file (by path),
# not per open handle: an fsync through any handle makes every write to the file durable. A
# file opened with O_SYNC or O_DSYNC writes through at once. Not cached, durable at once: sizes
# (truncate, and a write past the end sets SOURCE's size before its data is durable, so the new
# tail reads as zeroes until then), names (create, rename, unlink) and modes. The mount is
# write-through from the kernel (no writeback_cache, no kernel_cache): this process sees every
# pwrite the server makes, in the order it makes them; what the kernel caches of reads is gone
# with the mount. There is no fallocate (fusepy has none): a server that punches holes writes
# zeroes instead, which the cache holds like any write.
#
# A power cut: a lookup of MOUNTPOINT/.powercut-SEED (stat it) writes a random half of every
# file's dirty pages to SOURCE (each page kept with probability 1/2, chosen by SEED: a disk's
# cache writes back in any order) and drops the rest, then appends one JSON line to
# SOURCE/.powercut.log: {"seed", "kept", "dropped", "files": {NAME: [kept, dropped]}}; the stat
# answers a fake file whose size is kept * 2**32 + dropped. From then on every operation but a
# stat of the root and closing fails with EIO, until the file system is unmounted. Unmount and
# mount a new process over the same SOURCE: its files are what survived the cut. (A lookup, not
# a signal: fusepy's main thread waits in C, where Python signal handlers do not run; the cut is
# done under the lock every write and fsync takes, so none is half done.)
import errno
import json
import os
import random
import stat
import sys
import threading

from fusepy import FUSE, FuseOSError, Operations


PAGE = 4096
POWERCUT = '/.powercut-'


class FaultyPassthrough(Operations):
    def __init__(self, source, volatile=False):
        self.source = source
        self.faults_path = os.path.join(source, '.faults.json')
        self.log_path = os.path.join(source, '.faults.log')
        self.cut_log_path = os.path.join(source, '.powercut.log')
        self.faults = {}
        self.faults_stamp = None
        self.volatile = volatile
        # Volatile mode: path -> {page index: bytearray(PAGE)} of dirty pages; the handles opened
        # O_SYNC or O_DSYNC (written through); whether the power was cut. One lock for all.
        self.dirty = {}
        self.sync_fhs = set()
        self.dead = False
        self.lock = threading.Lock()

    def _real(self, path):
        return os.path.join(self.source, path.lstrip('/'))

    def _faults_for(self, path):
        try:
            st = os.stat(self.faults_path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self.faults_stamp:
            self.faults_stamp = stamp
            if stamp is None:
                self.faults = {}
            else:
                with open(self.faults_path) as f:
                    self.faults = json.load(f)
        return self.faults.get(path.lstrip('/'), {})

    def _fail(self, path, what, offset=0, length=0):
        with open(self.log_path, 'a') as f:
            f.write(f'{what} {path.lstrip("/")} {offset} {length}\n')
        raise FuseOSError(errno.EIO)

    def _check(self, path, what, offset, length):
        for start, n in self._faults_for(path).get(what, []):
            if offset < start + n and start < offset + length:
                self._fail(path, what, offset, length)

    # Names and attributes: straight through.
    def getattr(self, path, fh=None):
        if self.volatile and path.startswith(POWERCUT):
            return self._power_cut(path[len(POWERCUT):])
        if path != '/':
            self._alive()
        st = os.lstat(self._real(path))
        keys = ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_atime', 'st_mtime', 'st_ctime', 'st_blocks')
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        self._alive()
        return ['.', '..'] + [n for n in os.listdir(self._real(path)) if not n.startswith(('.faults', '.powercut'))]

    def statfs(self, path):
        sv = os.statvfs(self._real(path))
        keys = ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')
        return {k: getattr(sv, k) for k in keys}

    def access(self, path, mode):
        if not os.access(self._real(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        self._alive()
        os.chmod(self._real(path), mode)

    def unlink(self, path):
        with self.lock:
            self._alive()
            os.unlink(self._real(path))
            self.dirty.pop(path, None)

    def rename(self, old, new):
        with self.lock:
            self._alive()
            os.rename(self._real(old), self._real(new))
            self.dirty.pop(new, None)
            if old in self.dirty:
                self.dirty[new] = self.dirty.pop(old)

    def utimens(self, path, times=None):
        os.utime(self._real(path), times)

    # Data: through, unless a fault says otherwise (or, volatile, into the cache).
    def open(self, path, flags):
        self._alive()
        fh = os.open(self._real(path), flags)
        if flags & (os.O_SYNC | os.O_DSYNC):
            self.sync_fhs.add(fh)
        return fh

    def create(self, path, mode, fi=None):
        with self.lock:
            self._alive()
            self.dirty.pop(path, None)
            return os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, length, offset, fh):
        self._alive()
        self._check(path, 'read', offset, length)
        if not self.volatile:
            return os.pread(fh, length, offset)
        with self.lock:
            self._alive()
            data = os.pread(fh, length, offset)
            pages = self.dirty.get(path)
            if not pages or not data:
                return data
            out = None
            end = offset + len(data)
            for p in range(offset // PAGE, (end - 1) // PAGE + 1):
                page = pages.get(p)
                if page is None:
                    continue
                if out is None:
                    out = bytearray(data)
                lo, hi = max(offset, p * PAGE), min(end, (p + 1) * PAGE)
                out[lo - offset:hi - offset] = page[lo - p * PAGE:hi - p * PAGE]
            return bytes(out) if out is not None else data

    def write(self, path, data, offset, fh):
        self._alive()
        self._check(path, 'write', offset, len(data))
        if not self.volatile:
            return os.pwrite(fh, data, offset)
        with self.lock:
            self._alive()
            through = fh in self.sync_fhs
            pages = self.dirty.get(path)
            if through and not pages:
                return os.pwrite(fh, data, offset)
            end = offset + len(data)
            real = self._real(path)
            fd = os.open(real, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                if through:
                    os.pwrite(fh, data, offset)  # O_DSYNC: durable now
                    # Dirty pages it overlaps take its bytes, so they never write older ones back.
                    self._into_pages(pages, data, offset, None, size, only_present=True)
                    return len(data)
                if end > size:
                    os.ftruncate(fd, end)  # sizes are durable at once
                if pages is None:
                    pages = self.dirty[path] = {}
                self._into_pages(pages, data, offset, fd, size)
            finally:
                os.close(fd)
            return len(data)

    def _into_pages(self, pages, data, offset, fd, size, only_present=False):
        end = offset + len(data)
        for p in range(offset // PAGE, (end - 1) // PAGE + 1):
            lo, hi = max(offset, p * PAGE), min(end, (p + 1) * PAGE)
            page = pages.get(p)
            if page is None:
                if only_present:
                    continue
                if hi - lo == PAGE:
                    page = bytearray(PAGE)
                else:
                    # The page as SOURCE holds it (beyond SOURCE's old end: zeroes).
                    page = bytearray(os.pread(fd, PAGE, p * PAGE) if p * PAGE < size else b'')
                    page.extend(bytes(PAGE - len(page)))
                pages[p] = page
            page[lo - p * PAGE:hi - p * PAGE] = data[lo - offset:hi - offset]

    def truncate(self, path, length, fh=None):
        with self.lock:
            self._alive()
            with open(self._real(path), 'r+b') as f:
                f.truncate(length)
            pages = self.dirty.get(path)
            if pages:
                for p in [p for p in pages if p * PAGE >= length]:
                    del pages[p]
                last = pages.get(length // PAGE)
                if last is not None:
                    last[length % PAGE:] = bytes(PAGE - length % PAGE)

    def fsync(self, path, datasync, fh):
        self._alive()
        if self._faults_for(path).get('fsync'):
            self._fail(path, 'fsync')
        if not self.volatile:
            os.fdatasync(fh) if datasync else os.fsync(fh)
            return 0
        with self.lock:
            self._alive()
            pages = self.dirty.get(path, {})
            self._write_back(path, sorted(pages), pages, datasync)
            self.dirty.pop(path, None)
        return 0

    def _write_back(self, path, which, pages, datasync=True):
        """Writes pages `which` of `path` to SOURCE (within its size), then syncs SOURCE."""
        fd = os.open(self._real(path), os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            for p in which:
                n = min(PAGE, size - p * PAGE)
                if n > 0:
                    os.pwrite(fd, bytes(pages[p][:n]), p * PAGE)
            os.fdatasync(fd) if datasync else os.fsync(fd)
        finally:
            os.close(fd)

    def _alive(self):
        if self.dead:
            raise FuseOSError(errno.EIO)

    def _power_cut(self, seed_text):
        with self.lock:
            self._alive()
            try:
                seed = int(seed_text)
            except ValueError:
                raise FuseOSError(errno.ENOENT)
            self.dead = True
            chance = random.Random(seed)
            report = {'seed': seed, 'kept': 0, 'dropped': 0, 'files': {}}
            for path in sorted(self.dirty):
                pages = self.dirty[path]
                kept = [p for p in sorted(pages) if chance.random() < 0.5]
                if os.path.exists(self._real(path)):
                    self._write_back(path, kept, pages)
                report['files'][path.lstrip('/')] = [len(kept), len(pages) - len(kept)]
                report['kept'] += len(kept)
                report['dropped'] += len(pages) - len(kept)
            self.dirty = {}
            with open(self.cut_log_path, 'a') as f:
                f.write(json.dumps(report) + '\n')
                f.flush()
                os.fsync(f.fileno())
            return {'st_mode': stat.S_IFREG | 0o444, 'st_nlink': 1, 'st_size': report['kept'] * 2**32 + report['dropped'],
                    'st_uid': os.getuid(), 'st_gid': os.getgid(), 'st_atime': 0, 'st_mtime': 0, 'st_ctime': 0}

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        self.sync_fhs.discard(fh)
        os.close(fh)


def main():
    args = sys.argv[1:]
    volatile = args[:1] == ['--volatile']
    if volatile:
        args = args[1:]
    if len(args) != 2:
        sys.exit('usage: faulty-fs.py [--volatile] SOURCE MOUNTPOINT')
    source, mountpoint = args
    FUSE(FaultyPassthrough(os.path.realpath(source), volatile), mountpoint, foreground=True, nothreads=False,
         big_writes=True, max_write=1048576, max_read=1048576)


if __name__ == '__main__':
    main()
