// Anomaly scores per workload over time, and counts per minute, as SVG.
import type { MinuteCount, Score } from "./types";

const W = 360;
const H = 90;

function polyline(points: [number, number][]): string {
  return points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
}

export function ScoreCharts(props: { scores: Map<string, Score[]> }) {
  const workloads = [...props.scores.entries()];
  if (workloads.length === 0) return <p className="muted">No anomaly scores yet.</p>;
  return (
    <div className="charts">
      {workloads.map(([workload, series]) => {
        const t0 = series[0]?.time_ms ?? 0;
        const t1 = series[series.length - 1]?.time_ms ?? 1;
        const span = Math.max(1, t1 - t0);
        const points = series.map((s) => [((s.time_ms - t0) / span) * W, H - s.score * H] as [number, number]);
        const latest = series[series.length - 1];
        return (
          <figure key={workload} className="chart" data-testid="score-chart">
            <figcaption>
              {workload} <b>{latest?.score.toFixed(2)}</b>
              {latest?.learning && <span className="muted"> (learning)</span>}
            </figcaption>
            <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`}>
              <line x1={0} x2={W} y1={H * 0.4} y2={H * 0.4} className="threshold" />
              <polyline points={polyline(points)} className="score-line" />
            </svg>
          </figure>
        );
      })}
    </div>
  );
}

export function Counters(props: { minutes: MinuteCount[] }) {
  const recent = props.minutes.slice(-30);
  const max = Math.max(1, ...recent.flatMap((m) => [m.findings, m.actions, m.event_batches]));
  const last = recent[recent.length - 1];
  const bar = W / Math.max(30, recent.length);
  return (
    <figure className="chart" data-testid="counters">
      <figcaption>
        per minute (last: {last?.findings ?? 0} findings, {last?.actions ?? 0} actions,{" "}
        {last?.event_batches ?? 0} event batches)
      </figcaption>
      <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`}>
        {recent.map((m, i) => (
          <g key={m.minute}>
            <rect x={i * bar} width={bar / 3} y={H - (m.findings / max) * H} height={(m.findings / max) * H} className="c-findings" />
            <rect x={i * bar + bar / 3} width={bar / 3} y={H - (m.actions / max) * H} height={(m.actions / max) * H} className="c-actions" />
            <rect x={i * bar + (2 * bar) / 3} width={bar / 3} y={H - (m.event_batches / max) * H} height={(m.event_batches / max) * H} className="c-events" />
          </g>
        ))}
      </svg>
    </figure>
  );
}
