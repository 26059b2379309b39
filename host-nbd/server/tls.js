// @ts-check
// TLS for NBD (NBD_OPT_STARTTLS) with Node's own `tls`: the client asks for TLS during option
// haggling, we acknowledge, and the same socket becomes a TLS session; haggling then starts over
// inside it. Credentials are laid out as nbdkit's are:
//   --tls-certificates DIR  DIR/server-cert.pem, DIR/server-key.pem, and DIR/ca-cert.pem when
//                           client certificates are checked (--tls-verify-peer)
//   --tls-psk FILE          pre-shared keys, psktool's format: one `username:hexkey` per line
// (one or the other, not both).
// Modes: 'off' (STARTTLS unsupported), 'on' (TLS offered, plain allowed), 'require' (every
// option but STARTTLS and ABORT is refused with NBD_REP_ERR_TLS_REQD until TLS is up).
import tls from 'node:tls';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const TLS_MODES = ['off', 'on', 'require'];

/**
 * @typedef {object} TlsConfig
 * @property {'on' | 'require'} mode
 * @property {tls.SecureContext} context
 * @property {boolean} verifyPeer
 * @property {((socket: tls.TLSSocket, identity: string) => Buffer | null) | undefined} psk
 */

/** Reads one credential file, naming it in the error. */
function readCredential(path, what) {
  if (!existsSync(path)) throw new Error(`TLS: ${what} ${path} does not exist`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`TLS: cannot read ${what} ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/**
 * psktool's key file: `username:hexkey` lines. Keys are checked here so a bad file fails at start.
 * @param {string} path @returns {Map<string, Buffer>}
 */
export function readPskFile(path) {
  const keys = new Map();
  readCredential(path, 'PSK file').toString('utf8').split('\n').forEach((line, i) => {
    const text = line.trim();
    if (!text || text.startsWith('#')) return;
    const colon = text.indexOf(':');
    const user = text.slice(0, colon);
    const hex = text.slice(colon + 1);
    if (colon <= 0 || !/^([0-9a-fA-F]{2})+$/.test(hex)) throw new Error(`TLS: ${path} line ${i + 1}: expected username:hexkey`);
    keys.set(user, Buffer.from(hex, 'hex'));
  });
  if (keys.size === 0) throw new Error(`TLS: ${path} holds no keys`);
  return keys;
}

/**
 * Builds the TLS configuration from command-line settings; null when TLS is off.
 * @param {{mode?: string, certificates?: string, psk?: string, verifyPeer?: boolean}} s
 * @returns {TlsConfig | null}
 */
export function loadTls(s) {
  const mode = s.mode ?? 'off';
  if (!TLS_MODES.includes(mode)) throw new Error(`--tls must be one of ${TLS_MODES.join(', ')}, not '${mode}'`);
  if (mode === 'off') {
    if (s.certificates || s.psk || s.verifyPeer) throw new Error('TLS credentials were given but --tls is off (use --tls=on or --tls=require)');
    return null;
  }
  if (!s.certificates && !s.psk) throw new Error(`--tls=${mode} needs credentials: --tls-certificates DIR or --tls-psk FILE`);
  // One kind per server, as nbdkit has it: with a certificate loaded, a PSK-only client is
  // offered certificate authentication and its handshake fails.
  if (s.certificates && s.psk) throw new Error('give either --tls-certificates or --tls-psk, not both');
  if (s.verifyPeer && !s.certificates) throw new Error('--tls-verify-peer checks client certificates: it needs --tls-certificates DIR with ca-cert.pem');
  /** @type {tls.SecureContextOptions} */
  const options = { minVersion: 'TLSv1.2' };
  if (s.certificates) {
    options.cert = readCredential(join(s.certificates, 'server-cert.pem'), 'certificate');
    options.key = readCredential(join(s.certificates, 'server-key.pem'), 'private key');
    if (s.verifyPeer) options.ca = readCredential(join(s.certificates, 'ca-cert.pem'), 'CA certificate');
  }
  let psk;
  if (s.psk) {
    const keys = readPskFile(s.psk);
    psk = (_socket, identity) => keys.get(identity) ?? null;
    // PSK suites are not in Node's default list; certificates (when given) keep theirs.
    options.ciphers = `${tls.DEFAULT_CIPHERS}:PSK`;
  }
  let context;
  try {
    context = tls.createSecureContext(options);
  } catch (e) {
    throw new Error(`TLS: the credentials do not load: ${e instanceof Error ? e.message : e}`);
  }
  return { mode: /** @type {'on' | 'require'} */ (mode), context, verifyPeer: !!s.verifyPeer, psk };
}

/**
 * Starts the server side of the TLS handshake on a connected socket (after STARTTLS was
 * acknowledged on it). `secure` owns the socket from now on (destroy it to drop the
 * connection); `ready` resolves once it is secure, or rejects when the handshake fails or the
 * client goes away first.
 * @param {import('node:net').Socket} socket @param {TlsConfig} config
 * @returns {{secure: tls.TLSSocket, ready: Promise<tls.TLSSocket>}}
 */
export function startTls(socket, config) {
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: config.context,
    requestCert: config.verifyPeer,
    rejectUnauthorized: config.verifyPeer,
    pskCallback: config.psk,
  });
  const ready = new Promise((resolve, reject) => {
    const failed = (/** @type {Error} */ e) => reject(new Error(`TLS handshake failed: ${e.message}`));
    const gone = () => reject(new Error('TLS handshake failed: the client went away'));
    secure.on('error', failed);
    secure.once('end', gone);
    secure.once('close', gone);
    secure.once('secure', () => {
      secure.off('error', failed);
      secure.off('end', gone);
      secure.off('close', gone);
      resolve(secure);
    });
  });
  return { secure, ready };
}
