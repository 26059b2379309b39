// @ts-check
// One NBD connection inside this process: a socket pair whose one end the in-process server
// serves and whose other end we negotiate on, then hand to the kernel.
//
// The negotiation runs on a duplicate of the client descriptor wrapped in a net.Socket, which is
// destroyed (never ended: shutdown() would close the kernel's side too) and fully closed before
// the kernel gets the original. libuv leaves the descriptor non-blocking; it is made blocking
// again, as the kernel's socket users expect.
import net from 'node:net';
import { negotiate } from './handshake.js';

/**
 * @typedef {(fd: number) => {socket: net.Socket, done: Promise<void>}} ServeFd
 * Serves one connection on a connected socket descriptor, which it takes over: `socket` is the
 * stream it made of it, `done` settles when the connection ends.
 */

/**
 * @typedef {object} Connection
 * @property {number} clientFd        ours until the kernel has it; closeClient() afterwards
 * @property {net.Socket} serverSide  the end the server serves
 * @property {Promise<void>} served   settles when the server is done with the connection
 * @property {() => void} closeClient
 * @property {() => void} abort       ends both sides (a connection the kernel never got)
 */

/**
 * @param {import('./native.js').NativeAddon} native
 * @param {ServeFd} serveFd
 * @param {string} exportName
 * @returns {Promise<{connection: Connection, info: import('./handshake.js').ExportInfo}>}
 */
export async function openConnection(native, serveFd, exportName) {
  const [serverFd, clientFd] = native.socketPair();
  const server = serveFd(serverFd);
  const serverSide = server.socket;
  const served = server.done.catch(() => {}); // the server reports its own errors
  let clientOpen = true;
  const connection = {
    clientFd,
    serverSide,
    served,
    closeClient() {
      if (clientOpen) native.closeFd(clientFd);
      clientOpen = false;
    },
    abort() {
      connection.closeClient();
      serverSide.destroy();
    },
  };
  try {
    const talk = new net.Socket({ fd: native.dupFd(clientFd), readable: true, writable: true });
    let info;
    try {
      info = await negotiate(talk, exportName);
    } finally {
      const closed = talk.closed ? Promise.resolve() : new Promise((resolve) => talk.once('close', resolve));
      talk.destroy();
      await closed;
    }
    native.setBlocking(clientFd);
    return { connection, info };
  } catch (e) {
    connection.abort();
    throw e;
  }
}
