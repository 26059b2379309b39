// @ts-check
// What the core fuzzers (tables.test.js, cow.test.js) hold the core to whatever the input: its
// commands stay inside their backing devices, and a table it refuses is refused cleanly.
import { CoreFault } from '../../../core-as/js/dmcore.js';

/** From now on, a command outside its backing device throws (the core promises none). @param {any} h the unit-test host */
export function checkCommandsInRange(h) {
  const execute = h.execute;
  h.execute = (/** @type {any} */ c, /** @type {any} */ status) => {
    const disk = h.disks.get(c.backing);
    if (!disk || c.sector * 512 + c.count * 512 > disk.length) throw new Error(`command outside its backing device: ${JSON.stringify(c)}`);
    execute(c, status);
  };
}

/**
 * Loads `table` into device `id`: 'loaded', or 'refused' when the core refused it with a
 * message and left no table behind. Throws on a trap (a bug, never a refusal) or an unclean refusal.
 * @param {any} h the unit-test host @param {number} id @param {string} table
 */
export function loadOrRefuse(h, id, table) {
  try {
    h.load(id, table);
    return 'loaded';
  } catch (e) {
    if (e instanceof CoreFault) throw e;
    if (!e.message) throw new Error('refused without a message');
    if (h.core.info(id).hasInactive) throw new Error(`refused (${e.message}) but a table was left loaded`);
    return 'refused';
  }
}
