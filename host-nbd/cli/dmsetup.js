// @ts-check
// dmkit ls | create | reload | suspend | resume | remove | clear | status | table | info | message | wait:
// dmsetup's verbs, sent to a running server over its control socket.
import { readFileSync } from 'node:fs';
import { parseArgs, UsageError } from './args.js';
import { controlRequest } from '../control/client.js';
import { defaultControlPath } from '../control/paths.js';

const HELP = {
  ls: ['dmkit ls', 'List the mapped devices of the running server, with their sizes in sectors.'],
  create: ['dmkit create NAME [--table TABLE | --file FILE]', 'Create a device and activate TABLE (dmsetup syntax; several lines allowed). Without --table or --file the table is read from standard input. Image paths are resolved in the server\'s working directory; a relative one that would name another file than in yours is refused: give absolute paths.'],
  reload: ['dmkit reload NAME [--table TABLE | --file FILE]', 'Load TABLE as the inactive table of NAME; it takes effect at the next resume. Image paths are resolved in the server\'s working directory (a relative one that would name another file than in yours is refused): give absolute paths.'],
  load: ['dmkit load NAME [--table TABLE | --file FILE]', 'Same as reload.'],
  suspend: ['dmkit suspend NAME', 'Hold new I/O to NAME and wait for the I/O in flight to finish.'],
  resume: ['dmkit resume NAME', 'Swap in the inactive table (if any) and release held I/O.'],
  remove: ['dmkit remove NAME', 'Remove a device; refused while it is open or other devices stack on it.'],
  clear: ['dmkit clear NAME', 'Drop the inactive table of NAME.'],
  status: ['dmkit status [NAME]', 'Print the status line of each segment, as dmsetup status does.'],
  table: ['dmkit table [NAME] [--inactive]', 'Print the table, as dmsetup table does.'],
  info: ['dmkit info [NAME]', 'Print state, tables present and open count.'],
  message: ['dmkit message NAME SECTOR MESSAGE...', 'Send a message to the target at SECTOR, as dmsetup message does.'],
  wait: ['dmkit wait NAME [EVENT_NR]', 'Wait until the event number of NAME is above EVENT_NR (default 0), as dmsetup wait does. A snapshot that goes Invalid raises an event; dmkit info NAME shows the number, so `dmkit wait NAME N` with the number info printed waits for the next one.'],
  exports: ['dmkit exports', 'List the NBD exports: the connections that have each open, the requests they started, and the reads whose bytes went from the backing files straight to the socket (sendfile).'],
  'set-time': ['dmkit set-time MS', 'Move the clock of a server started with --test-clock to MS milliseconds (flakey and delay targets follow it).'],
};

export const dmsetupCommands = Object.keys(HELP);

export function dmsetupHelp(cmd) {
  const [usage, text] = HELP[/** @type {keyof HELP} */ (cmd)];
  return `Usage: ${usage} [--control PATH]\n\n${text}\n\n  --control PATH  control socket of the server (default: $DMKIT_CONTROL or ${defaultControlPath()})\n`;
}

/** @param {string} cmd @param {string[]} argv @returns {Promise<string>} output to print */
export async function runDmsetupCommand(cmd, argv) {
  const { options, positional } = parseArgs(argv, {
    control: { type: 'string' }, table: { type: 'string' }, file: { type: 'string' },
    inactive: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (options.help) return dmsetupHelp(cmd);
  const control = options.control ?? defaultControlPath();
  const name = positional[0];
  const needsName = !['ls', 'status', 'table', 'info', 'set-time', 'exports'].includes(cmd);
  if (needsName && !name) throw new UsageError(`${cmd} needs a device name\n\n${dmsetupHelp(cmd)}`);
  // Nothing given is ignored: an extra name or option would otherwise look done and not be.
  const maxArgs = cmd === 'message' ? Infinity : ['ls', 'exports'].includes(cmd) ? 0 : cmd === 'wait' ? 2 : 1;
  if (positional.length > maxArgs) throw new UsageError(`unexpected argument '${positional[maxArgs]}'\n\n${dmsetupHelp(cmd)}`);
  const takesTable = cmd === 'create' || cmd === 'reload' || cmd === 'load';
  for (const opt of ['table', 'file']) {
    if (options[opt] !== undefined && !takesTable) throw new UsageError(`--${opt} is for create, reload and load\n\n${dmsetupHelp(cmd)}`);
  }
  if (options.inactive && cmd !== 'table') throw new UsageError(`--inactive is for table\n\n${dmsetupHelp(cmd)}`);
  if (options.table !== undefined && options.file !== undefined) throw new UsageError(`give the table with --table or --file, not both\n\n${dmsetupHelp(cmd)}`);
  const request = { cmd: cmd === 'load' ? 'reload' : cmd, name };
  if (takesTable) {
    request.table = options.table ?? readTable(options.file, cmd);
    request.cwd = process.cwd(); // relative file names in it are the caller's (see registry.js)
  }
  if (cmd === 'table') request.inactive = !!options.inactive;
  if (cmd === 'set-time') {
    if (!/^\d+(\.\d+)?$/.test(name ?? '')) throw new UsageError(`set-time needs a time in milliseconds\n\n${dmsetupHelp(cmd)}`);
    request.ms = Number(name);
    delete request.name;
  }
  if (cmd === 'wait' && positional[1] !== undefined) {
    if (!/^\d+$/.test(positional[1])) throw new UsageError(`invalid event number '${positional[1]}'\n\n${dmsetupHelp(cmd)}`);
    request.eventNr = Number(positional[1]);
  }
  if (cmd === 'message') {
    if (positional.length < 3) throw new UsageError(`message needs NAME SECTOR MESSAGE\n\n${dmsetupHelp(cmd)}`);
    if (!/^\d+$/.test(positional[1])) throw new UsageError(`invalid sector '${positional[1]}'`);
    request.sector = Number(positional[1]);
    request.message = positional.slice(2).join(' ');
  }
  try {
    return await controlRequest(control, request);
  } catch (e) {
    // dmsetup's words for a busy device, with the core's reason after them
    const code = /** @type {any} */ (e).code;
    if (code === 'EBUSY' && name) throw new Error(`${name}: Device or resource busy (${e.message})`);
    throw e;
  }
}

/** The table from --file, or from standard input (as dmsetup create reads it). */
function readTable(file, cmd) {
  // At a terminal, say so: otherwise the command just seems to hang.
  if (file === undefined && process.stdin.isTTY) process.stderr.write(`dmkit ${cmd}: reading the table from standard input; end it with Ctrl-D (or give --table TABLE)\n`);
  try {
    return readFileSync(file ?? 0, 'utf8');
  } catch (e) {
    const code = /** @type {any} */ (e).code;
    const why = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory' }[code];
    throw new Error(`${file ?? 'standard input'}: ${why ?? /** @type {Error} */ (e).message}`);
  }
}
