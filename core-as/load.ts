// Loading a table into a device's inactive slot (dmsetup load). Most tables are ready as soon as
// their constructors ran; targets with on-disk metadata (snapshots) first read it through the
// host, so such a load finishes later, with a completion carrying the host's tag.
import { MappedDevice } from "./device";
import { Table, parseTable, tableError } from "./table";
import { setLoadingDevice } from "./devref";
import { doneboxPush } from "./boxes";
import { EINVAL, EIO, ENXIO } from "./errno";

export const LOAD_DONE: i32 = 0;
export const LOAD_STARTED: i32 = 1;

/** Why the last startLoad failed at once. */
export let loadFailure = "";

/** Parses and constructs; returns LOAD_DONE, LOAD_STARTED, or -EINVAL (message in loadFailure). */
export function startLoad(dev: MappedDevice, text: string, tag: u32): i32 {
  setLoadingDevice(dev);
  const table = parseTable(text);
  setLoadingDevice(null);
  if (table == null) {
    loadFailure = dev.name + ": " + tableError;
    return -EINVAL;
  }
  table.acquire();
  for (let i = 0; i < table.targets.length; i++) {
    if (table.targets[i].startPrepare()) table.preparing++;
  }
  if (table.preparing == 0) {
    if (table.prepareError.length > 0) {
      loadFailure = dev.name + ": " + table.prepareError;
      table.retire();
      return -EINVAL;
    }
    install(dev, table);
    return LOAD_DONE;
  }
  table.loadingFor = dev;
  table.loadTag = tag;
  dev.loading = table;
  return LOAD_STARTED;
}

/** The last target of a loading table finished preparing. */
export function tablePrepared(table: Table): void {
  const dev = <MappedDevice>table.loadingFor;
  table.loadingFor = null;
  dev.loading = null;
  if (table.prepareError.length > 0) {
    dev.loadError = dev.name + ": " + table.prepareError;
    table.retire();
    doneboxPush(table.loadTag, loadErrno(table.prepareError));
    return;
  }
  dev.loadError = "";
  install(dev, table);
  doneboxPush(table.loadTag, 0);
}

/** The errno Linux's ctr returns for these failures: EIO for I/O errors, ENXIO for a foreign COW header. */
function loadErrno(error: string): i32 {
  if (error.includes("I/O error")) return EIO;
  if (error.includes("invalid or corrupt snapshot")) return ENXIO; // read_header's -ENXIO
  return EINVAL;
}

function install(dev: MappedDevice, table: Table): void {
  const old = dev.inactive;
  if (old != null) old.retire();
  table.device = dev;
  dev.inactive = table;
}
