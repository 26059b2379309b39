// A device a target maps onto: a host backing device, or another mapped device (stacking).
// The counterpart of the kernel's struct dm_dev, resolved by name as dm_get_device does.
import { Backing, backingByName } from "./backing";
import { MappedDevice, deviceByName } from "./device";

export class DevRef {
  constructor(public name: string, public backing: Backing | null, public mapped: MappedDevice | null) {}

  sectors(): u64 {
    const b = this.backing;
    if (b != null) return b.sectors;
    const m = this.mapped;
    if (m != null) return m.liveSectors();
    return u64.MAX_VALUE; // a name collected by tableDeps, not yet opened by the host
  }

  sameAs(other: DevRef): bool {
    return this.backing === other.backing && this.mapped === other.mapped;
  }
}

/** The device whose table is being constructed: a table may not stack on its own device. */
let loadingFor: MappedDevice | null = null;

export function setLoadingDevice(dev: MappedDevice | null): void {
  loadingFor = dev;
}

/** Why the last resolveDevice failed. */
export let resolveError = "";

/** While not null, resolveDevice only collects the names of host devices (dm_table_deps). */
let collecting: string[] | null = null;

export function startCollecting(): void {
  collecting = new Array<string>();
}

/** True while tables are only parsed for their device names: targets must not register anywhere. */
export function isCollecting(): bool {
  return collecting != null;
}

export function stopCollecting(): string[] {
  const names = collecting;
  collecting = null;
  return names == null ? new Array<string>() : names;
}

/** Looks a name up and checks that [start, start + len) lies inside it. */
export function resolveDevice(name: string, start: u64, len: u64): DevRef | null {
  let ref: DevRef | null = null;
  const mapped = deviceByName(name);
  const names = collecting;
  if (names != null) {
    if (mapped == null && !names.includes(name)) names.push(name);
    return new DevRef(name, null, null);
  }
  if (mapped != null) {
    if (!mapped.hasLiveTable()) {
      resolveError = "device " + name + " has no live table";
      return null;
    }
    const self = loadingFor;
    if (self != null && (mapped === self || mapped.dependsOn(self))) {
      resolveError = "device " + name + " would stack on itself";
      return null;
    }
    ref = new DevRef(name, null, mapped);
  } else {
    const b = backingByName(name);
    if (b == null) {
      resolveError = "unknown device " + name;
      return null;
    }
    ref = new DevRef(name, b, null);
  }
  const size = ref.sectors();
  if (start > size || len > size - start) {
    resolveError = "device " + name + " is too small: the mapping needs sectors " + start.toString() + "-" +
      (start + len).toString() + ", the device has " + size.toString();
    return null;
  }
  return ref;
}
