// @ts-check
// dmkit serve's security options: TLS (server/tls.js), the export allow-list
// (server/export-allow-list.js) and the cap on clients (server/limits.js). Listening beyond
// loopback (--allow-remote) stays in serve.js.
import { loadTls, TLS_MODES } from '../server/tls.js';
import { allowExports } from '../server/export-allow-list.js';
import { DEFAULT_LIMITS } from '../server/limits.js';
import { UsageError } from './args.js';

export const SECURITY_HELP = `Security:
  --tls=MODE            off (default), on (offer TLS through NBD_OPT_STARTTLS) or require
                        (clients that do not start TLS get NBD_REP_ERR_TLS_REQD)
  --tls-certificates DIR  DIR/server-cert.pem and DIR/server-key.pem (nbdkit's layout)
  --tls-psk FILE        pre-shared keys, one username:hexkey per line (psktool's format)
  --tls-verify-peer     require a client certificate signed by DIR/ca-cert.pem
  --allow-export NAME   serve only the named devices as exports (repeatable)
  --max-connections N   clients connected at once (default ${DEFAULT_LIMITS.maxConnections}); more are closed before the
                        greeting and logged
`;

export const SECURITY_SPEC = /** @type {const} */ ({
  tls: { type: 'string' }, 'tls-certificates': { type: 'string' }, 'tls-psk': { type: 'string' },
  'tls-verify-peer': { type: 'boolean' }, 'allow-export': { type: 'list' }, 'max-connections': { type: 'string' },
});

/**
 * The TLS configuration (null: off) and the export view the NBD server should use.
 * @param {Record<string, any>} options
 */
export function securityOf(options) {
  if (options.tls !== undefined && !TLS_MODES.includes(options.tls)) throw new UsageError(`--tls must be one of ${TLS_MODES.join(', ')}, not '${options.tls}'`);
  const tls = loadTls({ mode: options.tls, certificates: options['tls-certificates'], psk: options['tls-psk'], verifyPeer: !!options['tls-verify-peer'] });
  const names = options['allow-export'];
  return {
    tls,
    limits: options['max-connections'] === undefined ? {} : { maxConnections: parseMaxConnections(options['max-connections']) },
    /** @template {{name: string}} E @param {{getExport(name: string): E | null, listExports(): E[]}} registry */
    exports: (registry) => (names ? allowExports(registry, names) : registry),
  };
}

/** @param {string} text */
function parseMaxConnections(text) {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--max-connections expects a whole number of clients, at least 1, got '${text}'`);
  return n;
}
