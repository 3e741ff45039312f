import { useEffect, useMemo, useState } from "react";
import { currentSession, get, post, setCsrf } from "./api";
import { Counters, ScoreCharts } from "./Charts";
import { containmentState } from "./containment";
import { Feed } from "./Feed";
import { IncidentList, IncidentView } from "./Incidents";
import { useLive } from "./live";
import { Login } from "./Login";
import type { Session } from "./types";

type Tab = "feed" | "incidents" | "scores" | "containment";

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [tab, setTab] = useState<Tab>("feed");
  const [selected, setSelected] = useState<string | null>(null);
  const [users, setUsers] = useState<string[]>([]);
  const model = useLive(!!session);

  useEffect(() => {
    currentSession().then(setSession).catch(() => setSession(null));
  }, []);
  useEffect(() => {
    if (session) get<string[]>("/api/users").then(setUsers).catch(() => setUsers([]));
  }, [session]);

  const incidents = useMemo(
    () =>
      [...model.incidents.values()].sort(
        (a, b) =>
          Number(b.state.status === "open" || b.state.status === "acknowledged") -
            Number(a.state.status === "open" || a.state.status === "acknowledged") ||
          b.max_severity - a.max_severity ||
          b.last_ms - a.last_ms,
      ),
    [model.incidents],
  );

  if (session === undefined) return <p>Loading…</p>;
  if (session === null) return <Login onLogin={setSession} />;

  const open = (id: string) => {
    setSelected(id);
    setTab("incidents");
  };
  const logout = async () => {
    await post("/api/logout").catch(() => undefined);
    setCsrf(null);
    setSession(null);
  };
  const contained = incidents.filter((i) => i.containment);

  return (
    <div className="app">
      <header>
        <b>Vigil</b>
        {(["feed", "incidents", "scores", "containment"] as Tab[]).map((t) => (
          <button key={t} className={tab === t ? "tab active" : "tab"} data-testid={`tab-${t}`} onClick={() => setTab(t)}>
            {t}
          </button>
        ))}
        <span className={model.connected ? "live on" : "live off"} data-testid="live-status">
          {model.connected ? "live" : "connecting"}
        </span>
        {model.malformedTotal > 0 && (
          <span className="badge sev-error" data-testid="malformed-count" title={model.malformed[0]?.error}>
            {model.malformedTotal} unparseable
          </span>
        )}
        <span className="who">
          {session.user} ({session.role}) <button onClick={logout}>log out</button>
        </span>
      </header>
      <Counters minutes={model.minutes} />
      {tab === "feed" && <Feed findings={model.findings} onOpen={open} />}
      {tab === "incidents" && (
        <div className="split">
          <IncidentList incidents={incidents} selected={selected} onSelect={setSelected} />
          {selected && <IncidentView id={selected} session={session} users={users} summary={model.incidents.get(selected)} />}
        </div>
      )}
      {tab === "scores" && <ScoreCharts scores={model.scores} />}
      {tab === "containment" && (
        <table className="containment" data-testid="containment-table">
          <thead>
            <tr><th>pod</th><th>state</th><th>last action</th><th>by</th><th>when</th></tr>
          </thead>
          <tbody>
            {contained.map((i) => (
              <tr key={i.id} onClick={() => open(i.id)}>
                <td>{i.namespace}/{i.pod}</td>
                <td>{containmentState(i.containment!)}</td>
                <td>{i.containment!.kind} ({i.containment!.outcome})</td>
                <td>{i.containment!.requested_by || "policy"}</td>
                <td>{new Date(i.containment!.time_ms).toLocaleTimeString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {tab === "feed" && model.malformed.length > 0 && (
        <details className="malformed">
          <summary>{model.malformedTotal} payloads could not be parsed</summary>
          <ul>
            {model.malformed.map((m) => (
              <li key={`${m.stream}-${m.sequence}`}>{m.error}</li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}
