// One finding: where and what, its output fields, the anomaly's top
// features, the process chain and the triggering events as they arrived.
import { useEffect, useState } from "react";
import { Link, useParams } from "react-router";
import { ApiError, get } from "./api";
import { NotFound } from "./NotFound";
import type { FindingDetail as Detail } from "./types";

type Loaded = { detail: Detail } | { missing: string } | { error: string } | null;

export function FindingDetail() {
  const id = useParams().id ?? "";
  const [loaded, setLoaded] = useState<Loaded>(null);
  useEffect(() => {
    setLoaded(null);
    get<Detail>(`/api/findings/${encodeURIComponent(id)}`)
      .then((detail) => setLoaded({ detail }))
      .catch((e) =>
        setLoaded(e instanceof ApiError && e.status === 404 ? { missing: e.message } : { error: String(e.message ?? e) }),
      );
  }, [id]);

  if (loaded === null) return <section className="detail">Loading…</section>;
  if ("missing" in loaded) return <NotFound what={`finding ${id}`} detail={loaded.missing} />;
  if ("error" in loaded) return <p className="error">{loaded.error}</p>;
  const { finding: f, raw_events } = loaded.detail;
  const fields = Object.entries(f.output_fields);
  const chain = f.process ? [...f.ancestors].reverse().concat(f.process) : [];
  return (
    <section className="detail" data-testid="finding-detail">
      <h2>
        <span className={`badge sev-${f.priority}`}>{f.priority}</span> {f.rule}
      </h2>
      <p className="muted">
        {new Date(f.time_ms).toLocaleString()} · {f.source} · {f.namespace || "-"}/{f.pod || "-"} on {f.node}
        {f.container_id && <> · container {f.container_id.slice(0, 12)}</>}
        {f.source === "anomaly" && <> · score {f.score.toFixed(3)}</>}
      </p>
      <p>
        <Link data-testid="finding-incident" to={`/incidents/${encodeURIComponent(f.incident_id)}`}>
          Open incident {f.incident_id}
        </Link>
      </p>
      <pre className="output" data-testid="finding-output">{f.output}</pre>
      <p>
        {f.tactics.map((t) => (
          <Link key={t} className="badge" to={`/attack?tactic=${encodeURIComponent(t)}`}>
            {t}
          </Link>
        ))}
        {f.techniques.map((t) => (
          <Link key={t} className="badge technique" to={`/findings?technique=${encodeURIComponent(t)}`}>
            {t}
          </Link>
        ))}
        {f.tags.filter((t) => !t.startsWith("mitre_") && !f.techniques.includes(t.toUpperCase())).map((t) => (
          <Link key={t} className="badge" to={`/findings?tag=${encodeURIComponent(t)}`}>
            {t}
          </Link>
        ))}
      </p>
      <h3>Output fields</h3>
      {fields.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <table className="kv" data-testid="output-fields">
          <tbody>
            {fields.map(([k, v]) => (
              <tr key={k}>
                <th>{k}</th>
                <td>
                  <code>{v}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {f.explanation.length > 0 && (
        <>
          <h3>Top features</h3>
          <table className="kv" data-testid="explanation">
            <thead>
              <tr><th>feature</th><th>value</th><th>weight</th></tr>
            </thead>
            <tbody>
              {f.explanation.map((x) => (
                <tr key={x.feature}>
                  <td>{x.feature}</td>
                  <td>{x.value.toFixed(3)}</td>
                  <td>{x.weight.toFixed(3)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {chain.length > 0 && (
        <>
          <h3>Process chain</h3>
          <ol className="chain">
            {chain.map((p) => (
              <li key={p.pid}>
                <code>{p.pid} {p.comm}</code> <span className="muted">{p.cmdline.join(" ") || p.exe}</span>
              </li>
            ))}
          </ol>
        </>
      )}
      <h3>Raw event{raw_events.length === 1 ? "" : "s"}</h3>
      {raw_events.map((text, i) => (
        <pre key={i} data-testid="raw-event">{text}</pre>
      ))}
    </section>
  );
}
