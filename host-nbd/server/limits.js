// @ts-check
// What one connection may cost the server. A client past a limit is slowed down (memory: we stop
// reading its requests until replies drain) or refused (sizes: an NBD error), never served by
// taking memory from other clients.
import { MAX_REQUEST } from '../engine/device-export.js';

export const DEFAULT_LIMITS = Object.freeze({
  /** Largest READ / WRITE / CACHE (advertised as the maximum block size). */
  maxRequest: MAX_REQUEST,
  /** Payloads and read data a connection may hold in core memory and socket buffers at once. */
  connectionMemory: 4 * MAX_REQUEST,
  /**
   * Requests are read ahead while the connection holds less than this in payloads and read data
   * (two requests always may, so even the largest overlap). Reading further ahead is not faster
   * (a few pool threads do the file I/O) and spreads the buffers over more memory than the CPU
   * caches hold: every copy into and out of them then misses (docs/performance.md).
   */
  pipelineBytes: 4 << 20,
  /**
   * The same for all connections together. Past it, READ and WRITE get ENOMEM: many clients
   * that announce large writes and send nothing (or never read) cannot fill the core's memory.
   */
  serverMemory: 1 << 30,
  /**
   * Clients connected through the listening sockets at once. One more is closed before the
   * greeting: descriptors and per-connection buffers cannot run out, whatever a client opens.
   * (Devices this server attaches itself are not counted against it.)
   */
  maxConnections: 512,
  /** Largest option data accepted during the handshake (longer ones are skipped and refused). */
  maxOptionBytes: 64 * 1024,
  /** A client must reach the transmission phase within this time. */
  handshakeMs: 30_000,
  /**
   * A request that stops arriving half-way (header or WRITE payload), or replies the client
   * stops reading, for this long close the connection: what it held goes back to the others.
   */
  stallMs: 30_000,
  /** At shutdown, how long in-flight requests may take before connections are cut. */
  shutdownMs: 15_000,
  /** Errors logged per connection before the rest are only counted. */
  loggedErrors: 10,
});

/** @typedef {typeof DEFAULT_LIMITS} Limits */
