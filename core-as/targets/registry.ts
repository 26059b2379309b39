// Target types by name, as dm_get_target_type finds them.
import { Target } from "../target";
import { LinearTarget } from "./linear";
import { StripedTarget } from "./striped";
import { ZeroTarget } from "./zero";
import { ErrorTarget } from "./error";

export function createTarget(typeName: string): Target | null {
  if (typeName == "linear") return new LinearTarget();
  if (typeName == "striped") return new StripedTarget();
  if (typeName == "zero") return new ZeroTarget();
  if (typeName == "error") return new ErrorTarget();
  return null;
}
