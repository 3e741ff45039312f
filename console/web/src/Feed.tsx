// The findings feed: filters and free-text search kept in the URL (a
// filtered view is a link), a virtualised list (@tanstack/react-virtual:
// only the rows in view are in the DOM, so 10,000 findings scroll as 100),
// and export of the filtered view as CSV or JSON from the gateway.
import { useVirtualizer } from "@tanstack/react-virtual";
import { memo, useMemo, useRef } from "react";
import { Link, useSearchParams } from "react-router";
import { apiQuery, filtersFromParams, filtersToParams, matcher, RANGES, type Filters } from "./filters";
import type { Finding } from "./types";
import { PRIORITIES } from "./types";

const ROW_HEIGHT = 30;
const VIEW_HEIGHT = 540;
const OVERSCAN = 10;

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
  // A value from a link that no finding has (yet) stays selectable.
  const options = props.value && !props.options.includes(props.value) ? [props.value, ...props.options] : props.options;
  return (
    <label className="filter">
      {props.label}
      <select data-testid={`filter-${props.label}`} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        {props.any !== undefined && <option value="">{props.any}</option>}
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

/** One feed row; memoised so a scroll step renders only the rows it adds. */
const Row = memo(function Row(props: { finding: Finding; top: number }) {
  const f = props.finding;
  return (
    <Link
      to={`/findings/${encodeURIComponent(f.id)}`}
      className={`row sev-${f.priority}`}
      data-testid="feed-row"
      data-id={f.id}
      style={{ transform: `translateY(${props.top}px)`, height: ROW_HEIGHT }}
      title={f.output}
    >
      <span className="time">{new Date(f.time_ms).toLocaleTimeString()}</span>
      <span className={`badge sev-${f.priority}`}>{f.priority}</span>
      <span className="where">
        {f.namespace || "-"}/{f.pod || f.container_id.slice(0, 12) || f.node}
      </span>
      <span className="rule">{f.rule}</span>
      <span className="output">{f.output}</span>
    </Link>
  );
});

export function Feed(props: { findings: Finding[] }) {
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => filtersFromParams(params), [params]);
  const { findings } = props;
  const options = useMemo(
    () => ({
      namespace: distinct(findings, (f) => [f.namespace]),
      pod: distinct(findings, (f) => [f.pod]),
      rule: distinct(findings, (f) => [f.rule]),
      tag: distinct(findings, (f) => f.tags),
      tactic: distinct(findings, (f) => f.tactics),
      technique: distinct(findings, (f) => f.techniques),
    }),
    [findings],
  );
  const shown = useMemo(() => findings.filter(matcher(filters, Date.now())), [findings, filters]);
  // Typing replaces the history entry; choosing a filter adds one (Back undoes it).
  const set = (key: keyof Filters) => (value: string) =>
    setParams(filtersToParams({ ...filters, [key]: value }), { replace: key === "q" });

  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: OVERSCAN,
    initialRect: { width: 1200, height: VIEW_HEIGHT },
    getItemKey: (index) => shown[index].id,
  });
  const query = apiQuery(filters, Date.now());

  return (
    <section className="feed">
      <div className="filters">
        <label className="filter">
          search
          <input
            type="search"
            data-testid="search"
            placeholder="rule, output, pod, process, field…"
            value={filters.q}
            maxLength={256}
            onChange={(e) => set("q")(e.target.value)}
          />
        </label>
        <Select label="priority" value={filters.priority} options={[...PRIORITIES].reverse()} onChange={set("priority")} />
        <Select label="namespace" value={filters.namespace} options={options.namespace} onChange={set("namespace")} any="any" />
        <Select label="pod" value={filters.pod} options={options.pod} onChange={set("pod")} any="any" />
        <Select label="rule" value={filters.rule} options={options.rule} onChange={set("rule")} any="any" />
        <Select label="tag" value={filters.tag} options={options.tag} onChange={set("tag")} any="any" />
        <Select label="tactic" value={filters.tactic} options={options.tactic} onChange={set("tactic")} any="any" />
        <Select label="technique" value={filters.technique} options={options.technique} onChange={set("technique")} any="any" />
        <Select label="time" value={filters.range} options={Object.keys(RANGES)} onChange={set("range")} />
        <a className="button" data-testid="export-csv" href={`/api/export/csv?${query}`} download>
          CSV
        </a>
        <a className="button" data-testid="export-json" href={`/api/export/json?${query}`} download>
          JSON
        </a>
        <span className="count" data-testid="feed-count">
          {shown.length} of {findings.length}
        </span>
      </div>
      <div ref={scroller} className="rows" data-testid="feed" style={{ height: VIEW_HEIGHT }}>
        <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
          {virtual.getVirtualItems().map((item) => (
            <Row key={item.key} finding={shown[item.index]} top={item.start} />
          ))}
        </div>
      </div>
    </section>
  );
}
