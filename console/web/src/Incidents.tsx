// Incidents (a pod's findings): list, and the selected one with its state,
// workflow buttons, timeline, process tree and actions.
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { ApiError, get, post } from "./api";
import { containmentText } from "./containment";
import { NotFound } from "./NotFound";
import type { Incident, IncidentDetail, Session, TreeNode } from "./types";

export function IncidentList(props: {
  incidents: Incident[];
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  return (
    <ul className="incidents" data-testid="incidents">
      {props.incidents.map((i) => (
        <li
          key={i.id}
          data-testid="incident"
          data-id={i.id}
          className={i.id === props.selected ? "selected" : ""}
          onClick={() => props.onSelect(i.id)}
        >
          <span className={`badge sev-${i.max_priority}`}>{i.max_priority}</span>
          <b>{i.namespace || "-"}/{i.pod || i.id}</b>
          <span className="muted"> {i.findings} findings · {i.state.status}</span>
          {i.containment?.contained && <span className="badge contained">contained</span>}
          {i.containment?.dry_run && (
            <span className="badge dry-run" data-testid="dry-run-badge">dry-run</span>
          )}
        </li>
      ))}
    </ul>
  );
}

function Tree(props: { nodes: TreeNode[] }) {
  return (
    <ul className="tree">
      {props.nodes.map((n) => (
        <li key={n.process.pid}>
          <code>
            {n.process.pid} {n.process.comm}
          </code>{" "}
          <span className="muted">{n.process.cmdline.join(" ") || n.process.exe}</span>
          {n.rules.map((r) => (
            <span key={r} className="badge rule-hit">
              {r}
            </span>
          ))}
          {n.children.length > 0 && <Tree nodes={n.children} />}
        </li>
      ))}
    </ul>
  );
}

export function IncidentView(props: { id: string; session: Session; users: string[]; summary?: Incident }) {
  const [detail, setDetail] = useState<IncidentDetail | null>(null);
  const [error, setError] = useState<string>("");
  const [missing, setMissing] = useState<string>("");
  const [notice, setNotice] = useState<string>("");
  const [text, setText] = useState("");
  const [assignee, setAssignee] = useState("");
  const [dryRun, setDryRun] = useState(false);
  const canAct = props.session.role === "responder";
  const { id, summary } = props;

  useEffect(() => {
    get<IncidentDetail>(`/api/incidents/${encodeURIComponent(id)}`)
      .then((d) => {
        setDetail(d);
        setMissing("");
      })
      .catch((e) => {
        if (e instanceof ApiError && e.status === 404) setMissing(e.message);
        else setError(String(e.message ?? e));
      });
    // Re-read when the live summary changes (new finding, state, containment).
  }, [id, summary]);

  const step = async (name: string, body: object = {}) => {
    setError("");
    setNotice("");
    try {
      const reply = await post<{ actions?: { kind: string; outcome: string }[] }>(
        `/api/incidents/${encodeURIComponent(id)}/${name}`,
        body,
      );
      const actions = reply.actions?.map((a) => `${a.kind}: ${a.outcome}`).join(", ");
      setNotice(actions ? `${name}: ${actions}` : `${name}: done`);
      setText("");
    } catch (e) {
      setError(e instanceof ApiError ? `${e.status}: ${e.message}` : String(e));
    }
  };

  if (missing) {
    return (
      <NotFound
        what={`incident ${id}`}
        detail={`${missing}. Incidents are a pod's findings; an incident whose findings are older than those kept in memory is no longer listed.`}
        back={{ to: "/incidents", label: "the incidents" }}
      />
    );
  }
  if (!detail || detail.incident.id !== id) return <section className="incident">{error || "Loading…"}</section>;
  const incident = summary ?? detail.incident;
  const state = incident.state;
  return (
    <section className="incident" data-testid="incident-view">
      <h2>
        {incident.namespace || "-"}/{incident.pod || incident.id}{" "}
        <span className={`badge sev-${incident.max_priority}`}>{incident.max_priority}</span>
      </h2>
      <p>
        Status <b data-testid="incident-status">{state.status}</b>
        {state.assignee && <> · assigned to <b>{state.assignee}</b></>}
        {" · "}containment{" "}
        <b data-testid="containment">
          {incident.containment ? containmentText(incident.containment) : "none"}
        </b>
      </p>
      {!canAct && <p className="muted" data-testid="read-only-note">Read-only: you can look but not act.</p>}
      <div className="workflow">
        <button disabled={!canAct} onClick={() => step("acknowledge")}>Acknowledge</button>
        <select value={assignee} onChange={(e) => setAssignee(e.target.value)} disabled={!canAct}>
          <option value="">assign to…</option>
          {props.users.map((u) => (
            <option key={u}>{u}</option>
          ))}
        </select>
        <button disabled={!canAct || !assignee} onClick={() => step("assign", { assignee })}>Assign</button>
        <label>
          <input
            type="checkbox"
            data-testid="dry-run"
            checked={dryRun}
            disabled={!canAct}
            onChange={(e) => setDryRun(e.target.checked)}
          />{" "}
          dry run
        </label>
        <button
          data-testid="quarantine-button"
          disabled={!canAct}
          className="danger"
          onClick={() => step("quarantine", { reason: text, dry_run: dryRun })}
        >
          {dryRun ? "Rehearse quarantine" : "Quarantine pod"}
        </button>
        <button disabled={!canAct} onClick={() => step("release", { reason: text, dry_run: dryRun })}>
          {dryRun ? "Rehearse release" : "Release"}
        </button>
        <button disabled={!canAct} onClick={() => step("resolve")}>Resolve</button>
      </div>
      <div className="workflow">
        <input
          placeholder="comment or reason"
          value={text}
          onChange={(e) => setText(e.target.value)}
          disabled={!canAct}
          data-testid="workflow-text"
        />
        <button disabled={!canAct || !text} onClick={() => step("comment", { text })}>Comment</button>
        <button disabled={!canAct || !text} onClick={() => step("false-positive", { reason: text })}>
          Mark false positive
        </button>
      </div>
      {notice && <p className="notice" data-testid="notice">{notice}</p>}
      {error && <p className="error" data-testid="error">{error}</p>}
      {state.proposed_change && (
        <>
          <h3>Proposed change (review before applying)</h3>
          <pre data-testid="proposed-change">{state.proposed_change}</pre>
        </>
      )}
      {state.comments.length > 0 && (
        <ul className="comments">
          {state.comments.map((c, i) => (
            <li key={i}>
              <b>{c.user}</b> <span className="muted">{new Date(c.time_ms).toLocaleString()}</span>: {c.text}
            </li>
          ))}
        </ul>
      )}
      <h3>Process tree</h3>
      <Tree nodes={detail.process_tree} />
      <h3>Timeline</h3>
      <ol className="timeline">
        {detail.timeline.map((f) => (
          <li key={f.id}>
            <span className="muted">{new Date(f.time_ms).toLocaleTimeString()}</span>{" "}
            <span className={`badge sev-${f.priority}`}>{f.priority}</span>{" "}
            <Link to={`/findings/${encodeURIComponent(f.id)}`}>{f.rule}</Link>: {f.output}
          </li>
        ))}
      </ol>
      <h3>Actions</h3>
      <ul className="actions-list">
        {detail.actions.map((a) => (
          <li key={a.id}>
            {new Date(a.time_ms).toLocaleTimeString()} {a.kind} <b>{a.outcome}</b> by {a.requested_by || a.policy} {a.reason}
          </li>
        ))}
      </ul>
    </section>
  );
}
