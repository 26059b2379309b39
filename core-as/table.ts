// A table: contiguous segments, each a constructed target. Parsing validates as dm-table.c and
// each target's ctr do, and every rejection names the line it comes from.
import { Target } from "./target";
import { createTarget } from "./targets/registry";
import { DevRef } from "./devref";
import { splitWords, parseU64 } from "./args";
import { Backing } from "./backing";
import { MappedDevice } from "./device";
import { tablePrepared } from "./load";

export class Table {
  targets: Target[] = [];
  /** The table-text line each target came from, for messages about it. */
  lineNos: i32[] = [];
  size: u64 = 0;
  /** Distinct devices the table maps onto. */
  deps: DevRef[] = [];
  /** Targets still preparing (reading metadata) and the first error any of them reported. */
  preparing: i32 = 0;
  prepareError: string = "";
  /** The device this table is being loaded into, and the host's tag for the load. */
  loadingFor: MappedDevice | null = null;
  loadTag: u32 = 0;
  /** The device the table was loaded into (dm_table_get_md), kept while it is being replaced. */
  device: MappedDevice | null = null;
  private retired: bool = false;

  /** A target finished its asynchronous preparation; error is "" on success. */
  targetPrepared(t: Target, error: string): void {
    this.notePrepareError(t, error);
    this.preparing--;
    if (this.preparing == 0 && this.loadingFor != null) tablePrepared(this);
  }

  /** Keeps the first preparation error, naming the line of the target that failed. */
  notePrepareError(t: Target, error: string): void {
    if (error.length == 0 || this.prepareError.length > 0) return;
    const i = this.targets.indexOf(t);
    const where = i >= 0 ? "line " + this.lineNos[i].toString() + ": " : "";
    this.prepareError = where + t.typeName() + ": " + error;
  }

  /** The table stops being live or inactive: drop device references, destroy its targets. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.release();
    this.destroyTargets();
  }

  destroyTargets(): void {
    for (let i = 0; i < this.targets.length; i++) this.targets[i].destroy();
  }

  /** Index of the segment holding sector (sector < size). */
  findTarget(sector: u64): i32 {
    let lo = 0;
    let hi = this.targets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.targets[mid].begin <= sector) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  /** Counts this table as a user of its devices (while live or inactive). */
  acquire(): void {
    for (let i = 0; i < this.deps.length; i++) {
      const d = this.deps[i];
      if (d.backing != null) (<Backing>d.backing).refs++;
      else (<MappedDevice>d.mapped).users++;
    }
  }

  release(): void {
    for (let i = 0; i < this.deps.length; i++) {
      const d = this.deps[i];
      if (d.backing != null) (<Backing>d.backing).refs--;
      else (<MappedDevice>d.mapped).users--;
    }
  }

  usesDevice(dev: MappedDevice): bool {
    for (let i = 0; i < this.deps.length; i++) {
      const m = this.deps[i].mapped;
      if (m != null && (m === dev || m.dependsOn(dev))) return true;
    }
    return false;
  }

  /** `start length type params` lines, as dmsetup table/status print them. */
  describe(statusType: i32): string {
    let out = "";
    for (let i = 0; i < this.targets.length; i++) {
      const t = this.targets[i];
      out += t.begin.toString() + " " + t.len.toString() + " " + t.typeName() + " " + t.status(statusType) + "\n";
    }
    return out;
  }
}

/** Why the last parseTable failed. */
export let tableError = "";

/** One table line as words, with its line number; blank and # lines are dropped. */
export class TableLine {
  constructor(public lineNo: i32, public words: string[]) {}
}

export function tableLines(text: string): TableLine[] {
  const lines = new Array<TableLine>();
  const raw = text.split("\n");
  for (let i = 0; i < raw.length; i++) {
    const words = splitWords(raw[i]);
    if (words.length == 0 || words[0].startsWith("#")) continue;
    lines.push(new TableLine(i + 1, words));
  }
  return lines;
}

export function parseTable(text: string): Table | null {
  const lines = tableLines(text);
  if (lines.length == 0) return failTable("table is empty");
  const table = new Table();
  let next: u64 = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const where = "line " + line.lineNo.toString() + ": ";
    const w = line.words;
    if (w.length < 3) return failTable(where + "expected <start> <length> <target> [<arguments>...]");
    const start = parseU64(w[0]);
    if (!start.ok) return failTable(where + "invalid start sector '" + w[0] + "'");
    const len = parseU64(w[1]);
    if (!len.ok) return failTable(where + "invalid length '" + w[1] + "'");
    if (len.value == 0) return failTable(where + "zero-length segment");
    if (start.value != next) {
      if (i == 0) return failTable(where + "the first segment must start at sector 0, not " + w[0]);
      return failTable(where + "segment starts at " + w[0] + " but the previous one ends at " + next.toString() +
        " (segments must be contiguous)");
    }
    if (len.value > u64.MAX_VALUE - start.value) return failTable(where + "segment end passes 2^64 sectors");
    const target = createTarget(w[2]);
    if (target == null) return failTable(where + "unknown target type '" + w[2] + "'");
    target.begin = start.value;
    target.len = len.value;
    target.table = table;
    if (!target.ctr(w.slice(3))) {
      target.destroy();
      for (let t = 0; t < table.targets.length; t++) table.targets[t].destroy();
      return failTable(where + w[2] + ": " + target.error);
    }
    table.targets.push(target);
    table.lineNos.push(line.lineNo);
    for (let d = 0; d < target.devices.length; d++) addDep(table.deps, target.devices[d]);
    next = start.value + len.value;
  }
  table.size = next;
  return table;
}

function addDep(deps: DevRef[], ref: DevRef): void {
  for (let i = 0; i < deps.length; i++) if (deps[i].sameAs(ref)) return;
  deps.push(ref);
}

function failTable(message: string): Table | null {
  tableError = message;
  return null;
}
