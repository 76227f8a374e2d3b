import type { AgentStatus, BreakKind } from './contract.gen';

/** JSON shapes of /api/v1 (pkg/plugin/store.go). */
export interface Alert {
  alert_id: string;
  event_time: string;
  received_at: string;
  host_name: string;
  event_name: string;
  tripwire_type: string;
  rule_name: string;
  severity: Severity;
  seq: number | null;
  summary: string;
  event_detail?: Record<string, unknown>;
  /** Set on alerts from `alerts` and `alerts/{id}` (pkg/plugin/triage.go). */
  triage?: Triage;
}

export type Severity = 'INFO' | 'WARN' | 'CRITICAL';

export interface AlertPage {
  alerts: Alert[];
  next_cursor?: string;
}

export interface AlertFilter {
  host?: string;
  type?: string;
  severity?: string;
  rule?: string;
  /** Triage states, comma-separated. */
  state?: string;
  /** A Grafana login the alerts are assigned to. */
  assignee?: string;
  q?: string;
  from?: string;
  to?: string;
}

export interface Host {
  host_name: string;
  host_id?: string;
  ip_address?: string;
  platform?: string;
  arch?: string;
  agent_version?: string;
  watchers?: string;
  unserved_rules?: string;
  /** Why the agent is DEGRADED, "; "-separated. */
  status_reasons?: string;
  cert_not_after?: string;
  first_seen: string;
  last_seen: string;
  last_alert_at?: string;
  status: AgentStatus;
  chain_head_seq?: number;
  alerts_24h: number;
}

/** An identity the collector refused: nothing it sent was stored, so it has no host row. */
export interface RefusedHost {
  /** The client certificate's CN. */
  cert_name: string;
  /** host_mismatch, revoked, expired, no_host_name. */
  reason: string;
  /** The host.name its records claimed, for a host mismatch. */
  claimed_name?: string;
  detail: string;
  cert_serial?: string;
  cert_not_after?: string;
  ip_address?: string;
  first_seen: string;
  last_seen: string;
  refusals: number;
}

export interface HostList {
  hosts: Host[];
  refused_hosts?: RefusedHost[];
  offline_after_seconds: number;
}

export interface AuditEntry {
  seq: number;
  alert_id: string;
  event_time: string;
  prev_hash: string;
  hash: string;
  payload: Record<string, unknown>;
  received_at: string;
}

export interface AuditPage {
  host: string;
  entries: AuditEntry[];
  next_cursor?: string;
}

export interface ChainBreak {
  kind: BreakKind;
  seq?: number;
  expected_seq?: number;
  got_seq?: number;
  expected_hash?: string;
  got_hash?: string;
  detail?: string;
  detected_at?: string;
  alert_id?: string;
}

export interface ChainStatus {
  host: string;
  intact: boolean;
  entries: number;
  first_seq: number;
  verified_up_to_seq: number;
  head_seq?: number;
  head_hash?: string;
  breaks: ChainBreak[];
  breaks_truncated?: boolean;
  recorded_breaks: ChainBreak[];
}

export interface Count {
  key: string;
  count: number;
}

export interface Stats {
  from: string;
  to: string;
  total: number;
  by_severity: Count[];
  by_type: Count[];
  top_hosts: Count[];
  top_rules: Count[];
  host_status: Count[];
}

/** What the Live page shows per alert (a row of a stream frame, or a stored alert with its triage). */
export type LiveAlert = Pick<
  Alert,
  | 'alert_id'
  | 'event_time'
  | 'host_name'
  | 'event_name'
  | 'tripwire_type'
  | 'rule_name'
  | 'severity'
  | 'summary'
  | 'triage'
> & {
  seq: number | null;
  /** Set on a stream row that is a triage change to the alert, not a new alert. */
  triage_changed?: true;
};

/** Triage states (pkg/plugin/triage.go); an alert nobody triaged is OPEN. */
export type TriageState = 'OPEN' | 'ACKNOWLEDGED';

export interface Triage {
  state: TriageState;
  /** A Grafana login. */
  assignee?: string;
  updated_at?: string;
  updated_by?: string;
}

/** One recorded triage change, by the Grafana user who made it. */
export interface TriageEntry {
  at: string;
  actor: string;
  action: 'state' | 'assign' | 'note';
  state?: TriageState;
  /** Absent when the alert was unassigned. */
  assignee?: string;
  note?: string;
}

export interface AlertTriage extends Triage {
  alert_id: string;
  host_name: string;
  event_time: string;
  history: TriageEntry[];
}

/** One alert by id and host (ids are unique per host). */
export interface AlertRef {
  alert_id: string;
  host_name: string;
  /** The event_time exactly as the API listed it: the backend then looks in that day's partition only. */
  event_time?: string;
}

export interface BulkTriageResult {
  applied: number;
  missing: AlertRef[];
}

/** The body of POST alerts/{id}/triage: absent fields stay; assignee '' unassigns. */
export interface TriageChange {
  state?: TriageState;
  assignee?: string;
  note?: string;
}
