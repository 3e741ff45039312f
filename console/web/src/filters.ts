// The findings filter: read from and written to the URL (so every filtered
// view is a link), matched in the browser for the live feed, and turned into
// the gateway's query for export (the gateway's /api/findings matches the
// same fields the same way: console/src/store.rs Filter, views.rs contains_text).
import type { Finding } from "./types";
import { SEVERITY } from "./types";

export const RANGES: Record<string, number> = {
  "5m": 5 * 60_000,
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "24h": 86_400_000,
  all: Infinity,
};

export interface Filters {
  priority: string;
  namespace: string;
  pod: string;
  rule: string;
  tag: string;
  tactic: string;
  technique: string;
  range: string;
  q: string;
}

export const NO_FILTERS: Filters = {
  priority: "debug",
  namespace: "",
  pod: "",
  rule: "",
  tag: "",
  tactic: "",
  technique: "",
  range: "all",
  q: "",
};

const KEYS = Object.keys(NO_FILTERS) as (keyof Filters)[];

/** Filters named in `params`; anything unknown or invalid falls back to "no filter". */
export function filtersFromParams(params: URLSearchParams): Filters {
  const filters = { ...NO_FILTERS };
  for (const key of KEYS) {
    const value = params.get(key);
    if (value !== null) filters[key] = value;
  }
  if (!(filters.priority in SEVERITY)) filters.priority = NO_FILTERS.priority;
  if (!(filters.range in RANGES)) filters.range = NO_FILTERS.range;
  return filters;
}

/** Only what differs from no filter, so links stay short. */
export function filtersToParams(filters: Filters): URLSearchParams {
  const params = new URLSearchParams();
  for (const key of KEYS) {
    if (filters[key] !== NO_FILTERS[key]) params.set(key, filters[key]);
  }
  return params;
}

/** The gateway's query for the same selection (`since_ms` from the range). */
export function apiQuery(filters: Filters, now: number): string {
  const params = new URLSearchParams();
  for (const key of ["priority", "namespace", "pod", "rule", "tag", "tactic", "technique", "q"] as const) {
    if (filters[key] !== NO_FILTERS[key]) params.set(key, filters[key]);
  }
  const range = RANGES[filters.range];
  if (Number.isFinite(range)) params.set("since_ms", String(now - range));
  return params.toString();
}

function containsText(f: Finding, needle: string): boolean {
  const has = (text: string) => text.toLowerCase().includes(needle);
  const processes = f.process ? [f.process, ...f.ancestors] : f.ancestors;
  return (
    has(f.rule) ||
    has(f.output) ||
    has(f.id) ||
    has(f.namespace) ||
    has(f.pod) ||
    has(f.node) ||
    has(f.container_id) ||
    f.tags.some(has) ||
    Object.values(f.output_fields).some(has) ||
    processes.some((p) => has(p.comm) || has(p.exe) || has(p.cmdline.join(" ")))
  );
}

/** A filter compiled once for many findings. */
export function matcher(filters: Filters, now: number): (f: Finding) => boolean {
  const minimum = SEVERITY[filters.priority] ?? 0;
  const needle = filters.q.trim().toLowerCase();
  const oldest = now - RANGES[filters.range];
  return (f) =>
    f.severity >= minimum &&
    (!filters.namespace || f.namespace === filters.namespace) &&
    (!filters.pod || f.pod === filters.pod) &&
    (!filters.rule || f.rule === filters.rule) &&
    (!filters.tag || f.tags.includes(filters.tag)) &&
    (!filters.tactic || f.tactics.includes(filters.tactic)) &&
    (!filters.technique || f.techniques.includes(filters.technique)) &&
    f.time_ms >= oldest &&
    (!needle || containsText(f, needle));
}
