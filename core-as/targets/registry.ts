// Target types by name, as dm_get_target_type finds them.
import { Target } from "../target";
import { LinearTarget } from "./linear";
import { StripedTarget } from "./striped";
import { ZeroTarget } from "./zero";
import { ErrorTarget } from "./error";
import { SnapshotTarget } from "./snapshot";
import { OriginTarget } from "./snapshot-origin";
import { SnapshotMergeTarget } from "./snapshot-merge";
import { EbsTarget } from "./ebs";
import { FlakeyTarget } from "./flakey";
import { DelayTarget } from "./delay";

export function createTarget(typeName: string): Target | null {
  if (typeName == "linear") return new LinearTarget();
  if (typeName == "striped") return new StripedTarget();
  if (typeName == "zero") return new ZeroTarget();
  if (typeName == "error") return new ErrorTarget();
  if (typeName == "snapshot") return new SnapshotTarget();
  if (typeName == "snapshot-origin") return new OriginTarget();
  if (typeName == "snapshot-merge") return new SnapshotMergeTarget();
  if (typeName == "ebs") return new EbsTarget();
  if (typeName == "flakey") return new FlakeyTarget();
  if (typeName == "delay") return new DelayTarget();
  return null;
}
