// How a pod's containment reads. A dry-run action changed nothing, so it is
// never called "contained": it says what would have been done.
import type { Containment } from "./types";

export function containmentState(c: Containment): string {
  if (c.dry_run) return "dry-run only, nothing done";
  return c.contained ? "contained" : "released";
}

export function containmentText(c: Containment): string {
  const by = c.requested_by || "policy";
  if (c.dry_run) return `dry-run: would ${c.kind.replace("_", " ")}, nothing done (by ${by})`;
  return `${containmentState(c)} (${c.kind} ${c.outcome} by ${by})`;
}
