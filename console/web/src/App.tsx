// The console's shell: login, the live model, navigation, and a route for
// every view, incident, finding and filter (links can be shared: a logged-out
// visitor logs in and lands on the same URL).
import { lazy, Suspense, useCallback, useEffect, useMemo, useState } from "react";
import { Navigate, NavLink, Route, Routes, useNavigate, useParams } from "react-router";
import { currentSession, get, post, setCsrf } from "./api";
import { Attack } from "./Attack";
import { Counters, ScoreCharts } from "./Charts";
import { containmentState } from "./containment";
import { Feed } from "./Feed";
import { FindingDetail } from "./FindingDetail";
import { IncidentList, IncidentView } from "./Incidents";
import { useLive } from "./live";
import { Login } from "./Login";
import { NotFound } from "./NotFound";
import { useCriticalNotifications } from "./notify";
import type { Finding, Incident, Session } from "./types";

// The chart library is most of the bundle: loaded when the charts are opened.
const FindingCharts = lazy(() => import("./FindingCharts").then((m) => ({ default: m.FindingCharts })));

const TABS: [string, string][] = [
  ["findings", "/findings"],
  ["incidents", "/incidents"],
  ["attack", "/attack"],
  ["charts", "/charts"],
  ["scores", "/scores"],
  ["containment", "/containment"],
];

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  useEffect(() => {
    currentSession().then(setSession).catch(() => setSession(null));
  }, []);
  if (session === undefined) return <p>Loading…</p>;
  if (session === null) return <Login onLogin={setSession} />;
  return <Console session={session} onLogout={() => setSession(null)} />;
}

function Console(props: { session: Session; onLogout: () => void }) {
  const { session } = props;
  const navigate = useNavigate();
  const [users, setUsers] = useState<string[]>([]);
  const openFinding = useCallback((f: Finding) => navigate(`/findings/${encodeURIComponent(f.id)}`), [navigate]);
  const notifications = useCriticalNotifications(openFinding);
  const model = useLive(true, notifications.onLive);

  useEffect(() => {
    get<string[]>("/api/users").then(setUsers).catch(() => setUsers([]));
  }, []);

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

  const logout = async () => {
    await post("/api/logout").catch(() => undefined);
    setCsrf(null);
    props.onLogout();
  };

  return (
    <div className="app">
      <header>
        <b>Vigil</b>
        {TABS.map(([name, path]) => (
          <NavLink key={name} to={path} className={({ isActive }) => (isActive ? "tab active" : "tab")} data-testid={`tab-${name}`}>
            {name}
          </NavLink>
        ))}
        <span className={model.connected ? "live on" : "live off"} data-testid="live-status">
          {model.connected ? "live" : "connecting"}
        </span>
        {model.malformedTotal > 0 && (
          <span className="badge sev-error" data-testid="malformed-count" title={model.malformed[0]?.error}>
            {model.malformedTotal} unparseable
          </span>
        )}
        <NotifyButton permission={notifications.permission} ask={notifications.ask} />
        <span className="who">
          {session.user} ({session.role}) <button onClick={logout}>log out</button>
        </span>
      </header>
      <Counters minutes={model.minutes} />
      <Routes>
        <Route path="/" element={<Navigate to="/findings" replace />} />
        <Route path="/findings" element={<Feed findings={model.findings} />} />
        <Route path="/findings/:id" element={<FindingDetail />} />
        <Route path="/incidents" element={<Incidents incidents={incidents} session={session} users={users} />} />
        <Route path="/incidents/:id" element={<Incidents incidents={incidents} session={session} users={users} />} />
        <Route path="/attack" element={<Attack findings={model.findings} />} />
        <Route path="/charts" element={
            <Suspense fallback={<p className="pad">Loading charts…</p>}>
              <FindingCharts findings={model.findings} />
            </Suspense>
          } />
        <Route path="/scores" element={<ScoreCharts scores={model.scores} />} />
        <Route path="/containment" element={<ContainmentTable incidents={incidents} />} />
        <Route path="*" element={<NotFound what="this page" detail="The console has no view at this address." />} />
      </Routes>
      {model.malformed.length > 0 && (
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

function NotifyButton(props: { permission: string; ask: () => void }) {
  if (props.permission === "unsupported") return null;
  if (props.permission === "granted") {
    return (
      <span className="muted" data-testid="notify-on">
        notifying on critical
      </span>
    );
  }
  return (
    <button data-testid="notify-button" disabled={props.permission === "denied"} onClick={props.ask}
      title={props.permission === "denied" ? "Notifications are blocked in this browser's site settings" : ""}>
      {props.permission === "denied" ? "notifications blocked" : "notify on critical"}
    </button>
  );
}

function Incidents(props: { incidents: Incident[]; session: Session; users: string[] }) {
  const selected = useParams().id ?? null;
  const navigate = useNavigate();
  const known = props.incidents.find((i) => i.id === selected);
  return (
    <div className="split">
      <IncidentList
        incidents={props.incidents}
        selected={selected}
        onSelect={(id) => navigate(`/incidents/${encodeURIComponent(id)}`)}
      />
      {selected ? (
        <IncidentView key={selected} id={selected} session={props.session} users={props.users} summary={known} />
      ) : (
        <p className="muted">Choose an incident.</p>
      )}
    </div>
  );
}

function ContainmentTable(props: { incidents: Incident[] }) {
  const navigate = useNavigate();
  const contained = props.incidents.filter((i) => i.containment);
  return (
    <table className="containment" data-testid="containment-table">
      <thead>
        <tr><th>pod</th><th>state</th><th>last action</th><th>by</th><th>when</th></tr>
      </thead>
      <tbody>
        {contained.map((i) => (
          <tr key={i.id} onClick={() => navigate(`/incidents/${encodeURIComponent(i.id)}`)}>
            <td>{i.namespace}/{i.pod}</td>
            <td>{containmentState(i.containment!)}</td>
            <td>{i.containment!.kind} ({i.containment!.outcome})</td>
            <td>{i.containment!.requested_by || "policy"}</td>
            <td>{new Date(i.containment!.time_ms).toLocaleTimeString()}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
