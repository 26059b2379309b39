// Backing devices: owned and executed by the host, known to the core by name, id and size.

export class Backing {
  /** Tables (live or inactive) that reference this device; it cannot be removed while > 0. */
  refs: i32 = 0;
  constructor(public id: i32, public name: string, public sectors: u64) {}
}

const backings = new Array<Backing | null>();

export function backingAdd(name: string, sectors: u64): Backing {
  const b = new Backing(backings.length, name, sectors);
  backings.push(b);
  return b;
}

export function backingById(id: i32): Backing | null {
  return id >= 0 && id < backings.length ? backings[id] : null;
}

export function backingByName(name: string): Backing | null {
  for (let i = 0; i < backings.length; i++) {
    const b = backings[i];
    if (b != null && b.name == name) return b;
  }
  return null;
}

export function backingRemove(b: Backing): void {
  backings[b.id] = null;
}
