// @ts-check
// The serve config file: images to create and devices with their tables in dmsetup syntax.
//
//   # comment
//   image /srv/base.img 1G          create a sparse image of that size if it is missing
//   device base                      the table lines that follow belong to device "base"
//     0 2097152 linear /srv/base.img 0
//
// Errors name the file and line.
import { readFileSync } from 'node:fs';
import { parseSize } from './sizes.js';

/**
 * @typedef {{path: string, bytes: number}} ImageSpec
 * @typedef {{name: string, table: string}} DeviceSpec
 * @param {string} text @param {string} [file]
 * @returns {{images: ImageSpec[], devices: DeviceSpec[]}}
 */
export function parseConfig(text, file = 'config') {
  const images = [];
  /** @type {DeviceSpec[]} */
  const devices = [];
  let current = null;
  text.split('\n').forEach((raw, i) => {
    const where = `${file}:${i + 1}`;
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const words = line.split(/\s+/);
    if (words[0] === 'image') {
      if (words.length !== 3) throw new Error(`${where}: expected 'image PATH SIZE'`);
      try { images.push({ path: words[1], bytes: parseSize(words[2]) }); } catch (e) { throw new Error(`${where}: ${e.message}`); }
      current = null;
    } else if (words[0] === 'device') {
      if (words.length !== 2) throw new Error(`${where}: expected 'device NAME'`);
      if (devices.some((d) => d.name === words[1])) throw new Error(`${where}: device ${words[1]} is defined twice`);
      current = { name: words[1], table: '' };
      devices.push(current);
    } else if (/^\d/.test(words[0])) {
      if (!current) throw new Error(`${where}: table line outside a 'device NAME' section`);
      current.table += line + '\n';
    } else {
      throw new Error(`${where}: unknown keyword '${words[0]}' (expected image, device, or a table line)`);
    }
  });
  for (const d of devices) if (!d.table) throw new Error(`${file}: device ${d.name} has no table lines`);
  return { images, devices };
}

export function readConfig(path) {
  let text;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new Error(`cannot read config ${path}: ${reason(e)}`); }
  return parseConfig(text, path);
}

/** Why a file could not be read, in words (not Node's "ENOENT: no such file or directory, open '...'"). */
function reason(e) {
  switch (e && e.code) {
    case 'ENOENT': return 'no such file';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EISDIR': return 'it is a directory';
    default: return e instanceof Error ? e.message : String(e);
  }
}
