// @ts-check
// A device's live table raised an event (a snapshot went Invalid): one log line per device with
// its event number and the status it has now, as Linux logs "Invalidating snapshot".

export class DeviceEventLog {
  /** @param {import('../../core-as/js/dmcore.js').DmCore} core @param {(line: string) => void} log */
  constructor(core, log) {
    this.core = core;
    this.log = log;
    /** The core's count of events raised, when last logged. */
    this.seen = 0;
    /** @type {Map<number, number>} device id -> its event number when last logged */
    this.byDevice = new Map();
  }

  /** Whether the core raised events not logged yet. */
  get pending() { return this.core.eventsRaised() !== this.seen; }

  /** Logs each device whose event number moved since last time. */
  logNew() {
    this.seen = this.core.eventsRaised();
    for (const name of this.core.listDevices()) {
      const id = this.core.findDevice(name);
      const nr = this.core.info(id).eventNr;
      if (nr === (this.byDevice.get(id) ?? 0)) continue; // ids are never reused
      this.byDevice.set(id, nr);
      const status = this.core.status(id).split('\n').filter((l) => l).join('; ');
      this.log(`device ${name}: event ${nr}, status now: ${status}`);
    }
  }
}
