// The core's kernel log: what Linux's targets say with DMERR or DMWARN and nothing else shows
// (a merge that stopped on an I/O error leaves only "Merge failed" in its status, and raises no
// event). Lines wait here until the host takes them (dm_take_log); the boxes' state counts them,
// so a host learns of them without a call in. Bounded: a host that never takes them loses the
// oldest.
import { noteLogLines } from "./boxes";
import { Table } from "./table";

const MAX_LINES = 64;

let lines = new Array<string>();
let dropped: u32 = 0;

/** DMERR/DMWARN for the device whose table `t` is (or is being loaded into): "NAME: TARGET: text". */
export function tableLog(t: Table, target: string, text: string): void {
  const d = t.device != null ? t.device : t.loadingFor;
  const name = d != null ? d.name : "(no device)";
  if (lines.length == MAX_LINES) {
    lines.shift();
    dropped++;
  }
  lines.push(name + ": " + target + ": " + text);
  noteLogLines(<u32>lines.length + (dropped > 0 ? 1 : 0));
}

/** The lines waiting, oldest first (with a count of any lost), and none left. */
export function takeLog(): string[] {
  const out = lines;
  if (dropped > 0) out.unshift(dropped.toString() + " earlier log lines were dropped: the host did not take them");
  lines = new Array<string>();
  dropped = 0;
  noteLogLines(0);
  return out;
}
