// Findings by MITRE ATT&CK tactic and technique (from the rules' tags:
// `mitre_<tactic>` and technique ids such as T1059.004), in the matrix's
// tactic order; each count links to the findings behind it.
import { useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import type { Finding } from "./types";

/** Enterprise ATT&CK tactics, left to right as in the matrix. */
const TACTIC_ORDER = [
  "reconnaissance",
  "resource_development",
  "initial_access",
  "execution",
  "persistence",
  "privilege_escalation",
  "defense_evasion",
  "credential_access",
  "discovery",
  "lateral_movement",
  "collection",
  "command_and_control",
  "exfiltration",
  "impact",
];

/** Findings of a tactic that name no technique. */
const NO_TECHNIQUE = "";

interface TacticCount {
  tactic: string;
  findings: number;
  techniques: [string, number][];
}

export function countByTactic(findings: Finding[]): TacticCount[] {
  const tactics = new Map<string, { findings: number; techniques: Map<string, number> }>();
  for (const f of findings) {
    for (const tactic of f.tactics) {
      const entry = tactics.get(tactic) ?? { findings: 0, techniques: new Map() };
      entry.findings += 1;
      for (const t of f.techniques.length > 0 ? f.techniques : [NO_TECHNIQUE]) {
        entry.techniques.set(t, (entry.techniques.get(t) ?? 0) + 1);
      }
      tactics.set(tactic, entry);
    }
  }
  const rank = (t: string) => {
    const i = TACTIC_ORDER.indexOf(t);
    return i < 0 ? TACTIC_ORDER.length : i;
  };
  return [...tactics.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([tactic, e]) => ({
      tactic,
      findings: e.findings,
      techniques: [...e.techniques.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])),
    }));
}

function techniqueUrl(id: string): string {
  return `https://attack.mitre.org/techniques/${id.replace(".", "/")}/`;
}

export function Attack(props: { findings: Finding[] }) {
  const [params] = useSearchParams();
  const only = params.get("tactic");
  const counts = useMemo(() => countByTactic(props.findings), [props.findings]);
  const shown = only ? counts.filter((c) => c.tactic === only) : counts;
  if (counts.length === 0) return <p className="muted pad">No finding carries a MITRE ATT&CK tag yet.</p>;
  return (
    <section className="attack" data-testid="attack">
      {only && (
        <p className="pad">
          Tactic <b>{only}</b> · <Link to="/attack">all tactics</Link>
        </p>
      )}
      <div className="matrix">
        {shown.map((c) => (
          <div key={c.tactic} className="tactic" data-testid="attack-tactic" data-tactic={c.tactic}>
            <h3>
              <Link to={`/findings?tactic=${encodeURIComponent(c.tactic)}`}>{c.tactic.replaceAll("_", " ")}</Link>{" "}
              <span className="muted">{c.findings}</span>
            </h3>
            <ul>
              {c.techniques.map(([technique, n]) => {
                const query = new URLSearchParams({ tactic: c.tactic });
                if (technique) query.set("technique", technique);
                return (
                  <li key={technique || "none"}>
                    <Link
                      to={`/findings?${query}`}
                      data-testid="attack-technique"
                      data-technique={technique || "none"}
                    >
                      {technique || "no technique tag"} <b>{n}</b>
                    </Link>
                    {technique && (
                      <a className="muted ext" href={techniqueUrl(technique)} target="_blank" rel="noreferrer" title="MITRE ATT&CK">
                        ↗
                      </a>
                    )}
                  </li>
                );
              })}
            </ul>
          </div>
        ))}
      </div>
    </section>
  );
}
