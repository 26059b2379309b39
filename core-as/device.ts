// Mapped devices, as device-mapper keeps them: a name, a live table, an inactive table waiting
// for resume, a suspended flag that holds new I/O, and the counts that make remove safe.
import { Table } from "./table";
import { Io } from "./io";
import { noteEvent } from "./boxes";

export class MappedDevice {
  live: Table | null = null;
  inactive: Table | null = null;
  suspended: bool = false;
  openCount: i32 = 0;
  /** Live or inactive tables of other devices that stack on this one. */
  users: i32 = 0;
  /** Requests dispatched to a table and not yet completed. */
  inflight: i32 = 0;
  /** Requests that arrived while suspended, dispatched at resume in arrival order. */
  held: Io[] = [];
  /** A table whose targets are still preparing (a load in progress), and why the last load failed. */
  loading: Table | null = null;
  loadError: string = "";
  /** Events its live table raised (dmsetup info's "Event number"): a snapshot invalidated. */
  eventNr: u32 = 0;

  constructor(public id: i32, public name: string) {}

  hasLiveTable(): bool {
    return this.live != null;
  }

  liveSectors(): u64 {
    const t = this.live;
    return t == null ? 0 : t.size;
  }

  /** True if a table of this device maps, directly or through others, onto dev. */
  dependsOn(dev: MappedDevice): bool {
    const live = this.live;
    if (live != null && live.usesDevice(dev)) return true;
    const inactive = this.inactive;
    return inactive != null && inactive.usesDevice(dev);
  }
}

const devices = new Array<MappedDevice | null>();

export function deviceAdd(name: string): MappedDevice {
  const d = new MappedDevice(devices.length, name);
  devices.push(d);
  return d;
}

export function deviceById(id: i32): MappedDevice | null {
  return id >= 0 && id < devices.length ? devices[id] : null;
}

export function deviceByName(name: string): MappedDevice | null {
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i];
    if (d != null && d.name == name) return d;
  }
  return null;
}

export function deviceRemove(d: MappedDevice): void {
  devices[d.id] = null;
}

export function deviceCount(): i32 {
  return devices.length;
}

/**
 * dm_table_event: a target of `t` has news for whoever watches its device (a snapshot went
 * Invalid). Counted on the device whose live table `t` is; a table not live yet raises none, as
 * in Linux, where the event callback is set when a table is bound.
 */
export function tableEvent(t: Table): void {
  const d = t.device;
  if (d == null || d.live != t) return;
  d.eventNr++;
  noteEvent();
}
