// Findings over time by priority and by rule (recharts), for the findings
// the URL's filters select (the same filters as the feed).
import { useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from "recharts";
import { filtersFromParams, matcher } from "./filters";
import type { Finding } from "./types";
import { PRIORITIES } from "./types";

const WIDTH = 960;
const HEIGHT = 260;
/** Rules drawn by name; the rest are summed as "other". */
const TOP_RULES = 8;
const BUCKETS = [60_000, 5 * 60_000, 15 * 60_000, 3_600_000, 6 * 3_600_000, 86_400_000];
const MAX_BARS = 60;

const PRIORITY_COLOURS: Record<string, string> = {
  emergency: "#ff2d55",
  alert: "#e0245e",
  critical: "#ff453a",
  error: "#ff8c3a",
  warning: "#ffd60a",
  notice: "#64d2ff",
  informational: "#8e8e93",
  debug: "#5e5e63",
};
const RULE_COLOURS = ["#64d2ff", "#ff8c3a", "#7bd88f", "#bf5af2", "#ffd60a", "#ff453a", "#5e9cff", "#ff6fae", "#8e8e93"];

type Row = Record<string, number | string>;

/** The smallest bucket that keeps the bars at most MAX_BARS. */
function bucketFor(span: number): number {
  return BUCKETS.find((b) => span / b <= MAX_BARS) ?? BUCKETS[BUCKETS.length - 1];
}

export function seriesOf(findings: Finding[], key: (f: Finding) => string): { rows: Row[]; bucket: number } {
  if (findings.length === 0) return { rows: [], bucket: BUCKETS[0] };
  let first = Infinity;
  let last = -Infinity;
  for (const f of findings) {
    first = Math.min(first, f.time_ms);
    last = Math.max(last, f.time_ms);
  }
  const bucket = bucketFor(last - first);
  const start = Math.floor(first / bucket);
  const rows: Row[] = [];
  for (let b = start; b <= Math.floor(last / bucket); b++) rows.push({ t: b * bucket });
  for (const f of findings) {
    const row = rows[Math.floor(f.time_ms / bucket) - start];
    const k = key(f);
    row[k] = ((row[k] as number | undefined) ?? 0) + 1;
  }
  return { rows, bucket };
}

function timeLabel(bucket: number) {
  return (t: number) => {
    const d = new Date(t);
    return bucket >= 86_400_000 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  };
}

function Chart(props: { testid: string; title: string; rows: Row[]; bucket: number; keys: string[]; colour: (k: string, i: number) => string }) {
  return (
    <figure className="chart wide" data-testid={props.testid}>
      <figcaption>{props.title}</figcaption>
      <BarChart width={WIDTH} height={HEIGHT} data={props.rows}>
        <CartesianGrid strokeDasharray="3 3" stroke="#223" />
        <XAxis dataKey="t" tickFormatter={timeLabel(props.bucket)} stroke="#8fa1b3" />
        <YAxis allowDecimals={false} stroke="#8fa1b3" />
        <Tooltip labelFormatter={(t) => new Date(Number(t)).toLocaleString()} contentStyle={{ background: "#161d26", border: "1px solid #334" }} />
        <Legend />
        {props.keys.map((k, i) => (
          <Bar key={k} dataKey={k} stackId="findings" fill={props.colour(k, i)} isAnimationActive={false} />
        ))}
      </BarChart>
    </figure>
  );
}

export function FindingCharts(props: { findings: Finding[] }) {
  const [params] = useSearchParams();
  const selected = useMemo(
    () => props.findings.filter(matcher(filtersFromParams(params), Date.now())),
    [props.findings, params],
  );
  const byPriority = useMemo(() => seriesOf(selected, (f) => f.priority), [selected]);
  const { byRule, rules } = useMemo(() => {
    const counts = new Map<string, number>();
    for (const f of selected) counts.set(f.rule, (counts.get(f.rule) ?? 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_RULES).map(([r]) => r);
    const named = new Set(top);
    const other = counts.size > top.length ? ["other"] : [];
    return { byRule: seriesOf(selected, (f) => (named.has(f.rule) ? f.rule : "other")), rules: [...top, ...other] };
  }, [selected]);
  const priorities = PRIORITIES.filter((p) => selected.some((f) => f.priority === p));
  const filtered = params.toString();
  return (
    <section className="charts-page">
      <p className="pad muted" data-testid="charts-count">
        {selected.length} findings{filtered && <> matching <Link to={`/findings?${filtered}`}>these filters</Link></>}
      </p>
      {selected.length === 0 ? (
        <p className="pad muted">No findings to chart.</p>
      ) : (
        <>
          <Chart
            testid="chart-priority"
            title="Findings by priority"
            rows={byPriority.rows}
            bucket={byPriority.bucket}
            keys={priorities}
            colour={(k) => PRIORITY_COLOURS[k] ?? "#8e8e93"}
          />
          <Chart
            testid="chart-rule"
            title={`Findings by rule (top ${TOP_RULES})`}
            rows={byRule.rows}
            bucket={byRule.bucket}
            keys={rules}
            colour={(_, i) => RULE_COLOURS[i % RULE_COLOURS.length]}
          />
        </>
      )}
    </section>
  );
}
