// The live feed: filters, and a virtualised list that renders only the rows
// in view, so 10,000 findings scroll as smoothly as 100.
import { memo, useMemo, useState } from "react";
import type { Finding } from "./types";
import { PRIORITIES, SEVERITY } from "./types";

const ROW_HEIGHT = 30;
const VIEW_HEIGHT = 540;
const OVERSCAN = 10;

const RANGES: Record<string, number> = {
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
  range: string;
}

export const NO_FILTERS: Filters = {
  priority: "debug",
  namespace: "",
  pod: "",
  rule: "",
  tag: "",
  tactic: "",
  range: "all",
};

export function matches(f: Finding, filters: Filters, now: number): boolean {
  return (
    f.severity >= (SEVERITY[filters.priority] ?? 0) &&
    (!filters.namespace || f.namespace === filters.namespace) &&
    (!filters.pod || f.pod === filters.pod) &&
    (!filters.rule || f.rule === filters.rule) &&
    (!filters.tag || f.tags.includes(filters.tag)) &&
    (!filters.tactic || f.tactics.includes(filters.tactic)) &&
    now - f.time_ms <= RANGES[filters.range]
  );
}

function distinct(findings: Finding[], pick: (f: Finding) => string[]): string[] {
  const values = new Set<string>();
  for (const f of findings) for (const v of pick(f)) if (v) values.add(v);
  return [...values].sort();
}

function Select(props: {
  label: string;
  value: string;
  options: string[];
  onChange: (value: string) => void;
  any?: string;
}) {
  return (
    <label className="filter">
      {props.label}
      <select
        data-testid={`filter-${props.label}`}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
      >
        {props.any !== undefined && <option value="">{props.any}</option>}
        {props.options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

/** One feed row; memoised so a scroll step renders only the rows it adds. */
const Row = memo(function Row(props: { finding: Finding; top: number; onOpen: (incidentId: string) => void }) {
  const f = props.finding;
  return (
    <div
      className={`row sev-${f.priority}`}
      data-testid="feed-row"
      data-id={f.id}
      style={{ top: props.top, height: ROW_HEIGHT }}
      onClick={() => props.onOpen(f.incident_id)}
      title={f.output}
    >
      <span className="time">{new Date(f.time_ms).toLocaleTimeString()}</span>
      <span className={`badge sev-${f.priority}`}>{f.priority}</span>
      <span className="where">
        {f.namespace || "-"}/{f.pod || f.container_id.slice(0, 12) || f.node}
      </span>
      <span className="rule">{f.rule}</span>
      <span className="output">{f.output}</span>
    </div>
  );
});

export function Feed(props: { findings: Finding[]; onOpen: (incidentId: string) => void }) {
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [scrollTop, setScrollTop] = useState(0);
  const { findings } = props;
  const options = useMemo(
    () => ({
      namespace: distinct(findings, (f) => [f.namespace]),
      pod: distinct(findings, (f) => [f.pod]),
      rule: distinct(findings, (f) => [f.rule]),
      tag: distinct(findings, (f) => f.tags),
      tactic: distinct(findings, (f) => f.tactics),
    }),
    [findings],
  );
  const shown = useMemo(() => {
    const now = Date.now();
    return findings.filter((f) => matches(f, filters, now));
  }, [findings, filters]);
  const set = (key: keyof Filters) => (value: string) => setFilters({ ...filters, [key]: value });

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(shown.length, Math.ceil((scrollTop + VIEW_HEIGHT) / ROW_HEIGHT) + OVERSCAN);
  const rows = shown.slice(first, last);

  return (
    <section className="feed">
      <div className="filters">
        <Select label="priority" value={filters.priority} options={[...PRIORITIES].reverse()} onChange={set("priority")} />
        <Select label="namespace" value={filters.namespace} options={options.namespace} onChange={set("namespace")} any="any" />
        <Select label="pod" value={filters.pod} options={options.pod} onChange={set("pod")} any="any" />
        <Select label="rule" value={filters.rule} options={options.rule} onChange={set("rule")} any="any" />
        <Select label="tag" value={filters.tag} options={options.tag} onChange={set("tag")} any="any" />
        <Select label="tactic" value={filters.tactic} options={options.tactic} onChange={set("tactic")} any="any" />
        <Select label="time" value={filters.range} options={Object.keys(RANGES)} onChange={set("range")} />
        <span className="count" data-testid="feed-count">
          {shown.length} of {findings.length}
        </span>
      </div>
      <div
        className="rows"
        data-testid="feed"
        style={{ height: VIEW_HEIGHT }}
        onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      >
        <div style={{ height: shown.length * ROW_HEIGHT, position: "relative" }}>
          {rows.map((f, i) => (
            <Row key={f.id} finding={f} top={(first + i) * ROW_HEIGHT} onOpen={props.onOpen} />
          ))}
        </div>
      </div>
    </section>
  );
}
