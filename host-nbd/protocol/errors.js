export class NbdError extends Error { constructor(errno, message) { super(message); this.errno = errno; } }
