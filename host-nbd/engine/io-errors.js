// @ts-check
// What a failed file command tells: the errno the core and NBD understand, and a log line, of
// which only some are written (a failing disk under a busy client must not fill the log with one
// line per request).
import { ERRNO, errnoName } from '../../core-as/js/dmcore.js';

/** Failed commands of one file logged in full, and then one in how many (ioErrorLine). */
const IO_ERRORS_LOGGED = 10;
const IO_ERRORS_EVERY = 1000;

/** Maps a Node fs error to the errno the core and NBD understand. */
export function errnoOf(e) {
  switch (e && e.code) {
    case 'ENOSPC': case 'EDQUOT': case 'EFBIG': return ERRNO.ENOSPC;
    case 'EROFS': case 'EPERM': case 'EACCES': return ERRNO.EPERM;
    case 'ENOMEM': return ERRNO.ENOMEM;
    default: return ERRNO.EIO;
  }
}

/**
 * Counts a failed file command against its file and says what to log of it: a line for the
 * first IO_ERRORS_LOGGED of each file, then for one in every IO_ERRORS_EVERY with the count, as
 * connections log their first refusals only; null for the others.
 * @param {{ioErrors: number, path: string} | null} file @param {NodeJS.ErrnoException} error
 * @param {number} status the errno it completes with @returns {string | null}
 */
export function ioErrorLine(file, error, status) {
  const n = file ? ++file.ioErrors : 1;
  if (n > IO_ERRORS_LOGGED && n % IO_ERRORS_EVERY !== 0) return null;
  const count = n < IO_ERRORS_LOGGED ? '' : ` [${n} I/O errors on this file so far; ` +
    `from now on one in ${IO_ERRORS_EVERY} is logged]`;
  return `I/O error on ${file?.path ?? 'an unknown device'}: ${error.message} (${errnoName(status)})${count}`;
}
