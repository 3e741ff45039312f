// The JSON the gateway sends (console/src/views.rs and store.rs).

export interface Process {
  pid: number;
  comm: string;
  exe: string;
  cmdline: string[];
}

export interface Finding {
  id: string;
  time_ms: number;
  source: string;
  rule: string;
  priority: string;
  severity: number;
  tags: string[];
  tactics: string[];
  techniques: string[];
  output: string;
  output_fields: Record<string, string>;
  namespace: string;
  pod: string;
  node: string;
  container_id: string;
  incident_id: string;
  score: number;
  process: Process | null;
  ancestors: Process[];
  explanation: Feature[];
}

export interface Feature {
  feature: string;
  value: number;
  weight: number;
}

export interface FindingDetail {
  finding: Finding;
  raw_events: string[];
}

export interface Action {
  id: string;
  finding_id: string;
  finding_name: string;
  kind: string;
  outcome: string;
  reason: string;
  dry_run: boolean;
  node: string;
  namespace: string;
  pod: string;
  incident_id: string;
  policy: string;
  requested_by: string;
  time_ms: number;
}

export interface Score {
  workload: string;
  namespace: string;
  pod: string;
  container_id: string;
  time_ms: number;
  score: number;
  novelty: number;
  learning: boolean;
}

export interface Comment {
  user: string;
  time_ms: number;
  text: string;
}

export interface IncidentState {
  status: string;
  assignee: string;
  comments: Comment[];
  proposed_change: string;
  updated_by: string;
  updated_ms: number;
}

export interface Containment {
  contained: boolean;
  dry_run: boolean;
  kind: string;
  outcome: string;
  requested_by: string;
  time_ms: number;
}

export interface Incident {
  id: string;
  namespace: string;
  pod: string;
  first_ms: number;
  last_ms: number;
  findings: number;
  max_priority: string;
  max_severity: number;
  rules: string[];
  latest_finding_id: string;
  state: IncidentState;
  containment: Containment | null;
}

export interface TreeNode {
  process: Process;
  rules: string[];
  children: TreeNode[];
}

export interface IncidentDetail {
  incident: Incident;
  timeline: Finding[];
  process_tree: TreeNode[];
  actions: Action[];
}

export interface MinuteCount {
  minute: number;
  findings: number;
  actions: number;
  event_batches: number;
}

export interface Malformed {
  stream: string;
  subject: string;
  sequence: number;
  error: string;
  bytes: number;
  time_ms: number;
}

export interface Session {
  user: string;
  role: "read-only" | "responder";
  csrf: string | null;
}

export const PRIORITIES = [
  "emergency",
  "alert",
  "critical",
  "error",
  "warning",
  "notice",
  "informational",
  "debug",
];

export const SEVERITY: Record<string, number> = {
  debug: 1,
  informational: 2,
  notice: 3,
  warning: 4,
  error: 5,
  critical: 6,
  alert: 7,
  emergency: 8,
};
