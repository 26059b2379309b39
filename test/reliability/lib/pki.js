// @ts-check
// Throwaway TLS credentials for the tests, made with openssl: a CA, a server certificate for
// localhost, a client certificate (for --tls-verify-peer) laid out as libnbd and nbdkit expect
// (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem in one
// folder), and a psktool-style key file.
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A certificate for `cn` signed by the CA in dir. */
function signed(dir, name, cn, extensions) {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}-cert.pem`, '-days', '30', '-extfile', `${name}.ext`], dir);
}

/** @param {string} dir @returns {{certs: string, clientCerts: string, psk: string, key: string}} */
export function makePki(dir) {
  const certs = join(dir, 'pki');
  mkdirSync(certs, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '30', '-subj', '/CN=dmkit test CA'], certs);
  signed(certs, 'server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed(certs, 'client', 'dmkit-test-client', 'extendedKeyUsage=clientAuth\n');
  const key = randomBytes(32).toString('hex');
  const psk = join(dir, 'keys.psk');
  writeFileSync(psk, `alice:${key}\n`);
  return { certs, clientCerts: certs, psk, key };
}
