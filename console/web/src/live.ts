// The live model: opens the event stream, fetches the snapshot once the
// stream is open (so nothing falls between the two; duplicates are merged by
// id), and batches arriving messages into one render per animation frame.
import { useEffect, useRef, useState } from "react";
import { get } from "./api";
import type { Action, Finding, Incident, Malformed, MinuteCount, Score } from "./types";

export interface Model {
  findings: Finding[]; // newest first
  incidents: Map<string, Incident>;
  actions: Action[]; // newest first
  scores: Map<string, Score[]>;
  malformedTotal: number;
  malformed: Malformed[];
  minutes: MinuteCount[];
  connected: boolean;
  version: number;
}

const empty = (): Model => ({
  findings: [],
  incidents: new Map(),
  actions: [],
  scores: new Map(),
  malformedTotal: 0,
  malformed: [],
  minutes: [],
  connected: false,
  version: 0,
});

type Message =
  | { kind: "finding"; value: Finding }
  | { kind: "action"; value: Action }
  | { kind: "score"; value: Score }
  | { kind: "incident"; value: Incident }
  | { kind: "malformed"; value: Malformed };

/** Merges findings newest first, skipping ids already present. */
function mergeFindings(existing: Finding[], incoming: Finding[], seen: Set<string>): Finding[] {
  const fresh = incoming.filter((f) => !seen.has(f.id));
  if (fresh.length === 0) return existing;
  fresh.forEach((f) => seen.add(f.id));
  const merged = fresh.concat(existing);
  // Usually already ordered (live messages are newer); sort only if not.
  for (let i = 1; i < merged.length; i++) {
    if (merged[i - 1].time_ms < merged[i].time_ms) {
      return merged.sort((a, b) => b.time_ms - a.time_ms);
    }
  }
  return merged;
}

/** `onLiveFinding` sees each finding the live stream delivers (not the snapshot's). */
export function useLive(enabled: boolean, onLiveFinding?: (finding: Finding) => void): Model {
  const [model, setModel] = useState<Model>(empty);
  const liveFinding = useRef(onLiveFinding);
  liveFinding.current = onLiveFinding;
  const pending = useRef<Message[]>([]);
  const seen = useRef(new Set<string>());
  const frame = useRef<number | null>(null);

  useEffect(() => {
    if (!enabled) return;
    const flush = () => {
      frame.current = null;
      const batch = pending.current;
      pending.current = [];
      setModel((m) => apply(m, batch, seen.current));
    };
    const queue = (message: Message) => {
      pending.current.push(message);
      if (frame.current === null) frame.current = requestAnimationFrame(flush);
    };
    const source = new EventSource("/api/stream");
    const on = (kind: Message["kind"]) =>
      source.addEventListener(kind, (e) => {
        const message = { kind, value: JSON.parse((e as MessageEvent).data) } as Message;
        if (message.kind === "finding") liveFinding.current?.(message.value);
        queue(message);
      });
    (["finding", "action", "score", "incident", "malformed"] as const).forEach(on);
    const snapshot = async () => {
      const [findings, incidents, actions, scores, malformed, minutes] = await Promise.all([
        get<Finding[]>("/api/findings"),
        get<Incident[]>("/api/incidents"),
        get<Action[]>("/api/actions"),
        get<Record<string, Score[]>>("/api/scores"),
        get<{ total: number; recent: Malformed[] }>("/api/malformed"),
        get<MinuteCount[]>("/api/counters"),
      ]);
      setModel((m) => ({
        ...m,
        findings: mergeFindings(m.findings, findings, seen.current),
        incidents: new Map([...incidents.map((i) => [i.id, i] as const), ...m.incidents]),
        actions: actions,
        scores: new Map(Object.entries(scores)),
        malformedTotal: malformed.total,
        malformed: malformed.recent,
        minutes,
        connected: true,
        version: m.version + 1,
      }));
    };
    source.addEventListener("hello", () => void snapshot());
    source.addEventListener("lagged", () => void snapshot());
    source.onerror = () => setModel((m) => ({ ...m, connected: false }));
    const counters = setInterval(() => {
      get<MinuteCount[]>("/api/counters")
        .then((minutes) => setModel((m) => ({ ...m, minutes })))
        .catch(() => undefined);
    }, 15000);
    return () => {
      source.close();
      clearInterval(counters);
      if (frame.current !== null) cancelAnimationFrame(frame.current);
    };
  }, [enabled]);

  return model;
}

function apply(m: Model, batch: Message[], seen: Set<string>): Model {
  const findings: Finding[] = [];
  const incidents = new Map(m.incidents);
  let actions = m.actions;
  const scores = new Map(m.scores);
  let malformed = m.malformed;
  let malformedTotal = m.malformedTotal;
  const minutes = m.minutes.map((c) => ({ ...c }));
  // Live counts between the periodic re-reads of /api/counters.
  const bump = (time_ms: number, key: "findings" | "actions") => {
    const minute = Math.floor(time_ms / 60000);
    let entry = minutes.find((c) => c.minute === minute);
    if (!entry) {
      entry = { minute, findings: 0, actions: 0, event_batches: 0 };
      minutes.push(entry);
      minutes.sort((a, b) => a.minute - b.minute);
    }
    entry[key] += 1;
  };
  for (const message of batch) {
    switch (message.kind) {
      case "finding":
        if (!seen.has(message.value.id)) bump(message.value.time_ms, "findings");
        findings.unshift(message.value);
        break;
      case "incident":
        incidents.set(message.value.id, message.value);
        break;
      case "action":
        if (!actions.some((a) => a.id === message.value.id)) {
          bump(message.value.time_ms, "actions");
          actions = [message.value, ...actions];
        }
        break;
      case "score": {
        const series = scores.get(message.value.workload) ?? [];
        scores.set(message.value.workload, [...series.slice(-499), message.value]);
        break;
      }
      case "malformed":
        malformedTotal += 1;
        malformed = [message.value, ...malformed].slice(0, 200);
        break;
    }
  }
  return {
    ...m,
    findings: mergeFindings(m.findings, findings, seen),
    incidents,
    actions,
    scores,
    malformed,
    malformedTotal,
    minutes,
    version: m.version + 1,
  };
}
