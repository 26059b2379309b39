#!/usr/bin/python3
# A FUSE filesystem that passes every file of SOURCE through at MOUNTPOINT and fails the I/O a
# test asks it to fail: the kernel then returns EIO to the server's pread, pwrite, fdatasync, or
# the page fault of a mapping, as a disk with a bad sector range would.
#
# Usage: faulty-fs.py SOURCE MOUNTPOINT   (runs in the foreground until unmounted)
#
# Faults are read from SOURCE/.faults.json whenever it changes (write it whole, then rename it
# into place): {"NAME": {"read": [[offset, length], ...], "write": [[offset, length], ...],
# "fsync": true}}. An operation touching one of a file's ranges fails with EIO, as does every
# fsync of it while "fsync" is true. The kernel caches what it read: fail a range before the
# server first reads it. SOURCE/.faults.log gets one line per failed operation.
import errno
import json
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class FaultyPassthrough(Operations):
    def __init__(self, source):
        self.source = source
        self.faults_path = os.path.join(source, '.faults.json')
        self.log_path = os.path.join(source, '.faults.log')
        self.faults = {}
        self.faults_stamp = None

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
        st = os.lstat(self._real(path))
        keys = ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_atime', 'st_mtime', 'st_ctime', 'st_blocks')
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return ['.', '..'] + [n for n in os.listdir(self._real(path)) if not n.startswith('.faults')]

    def statfs(self, path):
        sv = os.statvfs(self._real(path))
        keys = ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')
        return {k: getattr(sv, k) for k in keys}

    def access(self, path, mode):
        if not os.access(self._real(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._real(path), mode)

    def unlink(self, path):
        os.unlink(self._real(path))

    def rename(self, old, new):
        os.rename(self._real(old), self._real(new))

    def utimens(self, path, times=None):
        os.utime(self._real(path), times)

    # Data: through, unless a fault says otherwise.
    def open(self, path, flags):
        return os.open(self._real(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, length, offset, fh):
        self._check(path, 'read', offset, length)
        return os.pread(fh, length, offset)

    def write(self, path, data, offset, fh):
        self._check(path, 'write', offset, len(data))
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        with open(self._real(path), 'r+b') as f:
            f.truncate(length)

    def fsync(self, path, datasync, fh):
        if self._faults_for(path).get('fsync'):
            self._fail(path, 'fsync')
        os.fdatasync(fh) if datasync else os.fsync(fh)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: faulty-fs.py SOURCE MOUNTPOINT')
    source, mountpoint = sys.argv[1], sys.argv[2]
    FUSE(FaultyPassthrough(os.path.realpath(source)), mountpoint, foreground=True, nothreads=False,
         big_writes=True, max_write=1048576, max_read=1048576)


if __name__ == '__main__':
    main()
