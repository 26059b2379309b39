// What a failed file command completes with, and which of a file's failures are logged.
import { describe, it, expect } from 'vitest';
import { ERRNO } from '../../core-as/js/dmcore.js';
import { errnoOf, ioErrorLine } from './io-errors.js';

const failure = (code) => Object.assign(new Error(`${code} (test)`), { code });

describe('errnoOf', () => {
  it('maps Node fs errors to the errnos the core and NBD know, EIO for the rest', () => {
    expect(['ENOSPC', 'EDQUOT', 'EFBIG'].map((c) => errnoOf(failure(c)))).toEqual([ERRNO.ENOSPC, ERRNO.ENOSPC, ERRNO.ENOSPC]);
    expect(['EROFS', 'EPERM', 'EACCES'].map((c) => errnoOf(failure(c)))).toEqual([ERRNO.EPERM, ERRNO.EPERM, ERRNO.EPERM]);
    expect(errnoOf(failure('ENOMEM'))).toBe(ERRNO.ENOMEM);
    expect(errnoOf(failure('EIO'))).toBe(ERRNO.EIO);
    expect(errnoOf(new Error('no code'))).toBe(ERRNO.EIO);
    expect(errnoOf(null)).toBe(ERRNO.EIO);
  });
});

describe('ioErrorLine', () => {
  it("logs a file's first failures in full, then one in a thousand with the count", () => {
    const file = { path: '/img', ioErrors: 0 };
    const lines = [];
    for (let n = 1; n <= 2000; n++) lines.push(ioErrorLine(file, failure('EIO'), ERRNO.EIO));
    expect(file.ioErrors).toBe(2000);
    const logged = lines.map((l, k) => (l ? k + 1 : 0)).filter((n) => n);
    expect(logged).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1000, 2000]);
    expect(lines[0]).toBe('I/O error on /img: EIO (test) (EIO)');
    expect(lines[9]).toBe('I/O error on /img: EIO (test) (EIO) [10 I/O errors on this file so far; from now on one in 1000 is logged]');
    expect(lines[999]).toContain('[1000 I/O errors on this file so far;');
  });

  it('logs every failure of a command for no known file', () => {
    expect(ioErrorLine(null, failure('ENOSPC'), ERRNO.ENOSPC)).toBe('I/O error on an unknown device: ENOSPC (test) (ENOSPC)');
    expect(ioErrorLine(null, failure('ENOSPC'), ERRNO.ENOSPC)).not.toBeNull();
  });
});
