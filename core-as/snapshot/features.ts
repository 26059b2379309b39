// The optional feature arguments of snapshot and snapshot-merge (dm-snap.c's
// parse_snapshot_features): `<#features> <feature>...` after the chunk size.
//   discard_zeroes_cow       a discard covering whole chunks zeroes their exceptions' COW chunks
//   discard_passdown_origin  the discard also goes to the origin device (needs discard_zeroes_cow)
// Names are case-insensitive and may repeat, as in Linux. Unlike Linux, words after the
// announced features are refused rather than ignored (docs/vectors.md, divergences).
import { parseU64 } from "../args";

export const MAX_SNAPSHOT_FEATURES: u64 = 2;

export class SnapshotFeatures {
  discardZeroesCow: bool = false;
  discardPassdownOrigin: bool = false;
  /** Why the arguments were refused ("" when they were not). */
  error: string = "";

  /** ` N feature...` as snapshot_status prints it for the table ("" without features). */
  tableText(): string {
    const n = (this.discardZeroesCow ? 1 : 0) + (this.discardPassdownOrigin ? 1 : 0);
    if (n == 0) return "";
    let text = " " + n.toString();
    if (this.discardZeroesCow) text += " discard_zeroes_cow";
    if (this.discardPassdownOrigin) text += " discard_passdown_origin";
    return text;
  }
}

/** Parses args[first...]; the result's error says what was wrong. */
export function parseSnapshotFeatures(args: string[], first: i32): SnapshotFeatures {
  const f = new SnapshotFeatures();
  if (args.length <= first) return f;
  const n = parseU64(args[first]);
  if (!n.ok || n.value > MAX_SNAPSHOT_FEATURES) {
    f.error = "invalid number of feature arguments '" + args[first] + "' (0-" + MAX_SNAPSHOT_FEATURES.toString() + ")";
    return f;
  }
  const end = first + 1 + <i32>n.value;
  if (end > args.length) {
    f.error = "not enough feature arguments: " + n.value.toString() + " announced, " + (args.length - first - 1).toString() + " given";
    return f;
  }
  if (end < args.length) {
    f.error = "unexpected arguments after the features: '" + args.slice(end).join(" ") + "'";
    return f;
  }
  for (let i = first + 1; i < end; i++) {
    const word = args[i].toLowerCase();
    if (word == "discard_zeroes_cow") f.discardZeroesCow = true;
    else if (word == "discard_passdown_origin") f.discardPassdownOrigin = true;
    else {
      f.error = "unrecognised snapshot feature '" + args[i] + "'";
      return f;
    }
  }
  if (f.discardPassdownOrigin && !f.discardZeroesCow) f.error = "discard_passdown_origin feature depends on discard_zeroes_cow";
  return f;
}
