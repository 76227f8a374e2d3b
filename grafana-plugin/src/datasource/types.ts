import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** Query types the backend answers (pkg/plugin/query.go). */
export type QueryType = 'alerts' | 'counts' | 'hosts' | 'host_offline';
export type GroupBy = '' | 'type' | 'severity' | 'host' | 'rule';

export const TYPES = ['file', 'process', 'network', 'agent', 'audit'] as const;
export const SEVERITIES = ['INFO', 'WARN', 'CRITICAL'] as const;
/** Triage states (pkg/plugin/triage.go). */
export const STATES = ['OPEN', 'ACKNOWLEDGED'] as const;

export interface TripWireQuery extends DataQuery {
  queryType?: QueryType;
  /** alerts: logs (default) or table. */
  format?: 'logs' | 'table';
  host?: string;
  type?: string;
  severity?: string;
  rule?: string;
  /** Triage states, comma-separated (OPEN, ACKNOWLEDGED); the CRITICAL alert rule counts OPEN only. */
  state?: string;
  text?: string;
  /** counts: one series per value of this field. */
  groupBy?: GroupBy;
  limit?: number;
}

export const DEFAULT_QUERY: Partial<TripWireQuery> = {
  queryType: 'counts',
  groupBy: 'severity',
};

/** jsonData of the datasource (pkg/plugin/settings.go). */
export interface TripWireOptions extends DataSourceJsonData {
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  sslMode?: 'disable' | 'require' | 'verify-ca' | 'verify-full';
  maxConns?: number;
  heartbeatSeconds?: number;
}

/** secureJsonData: never sent back to the browser. */
export interface TripWireSecureOptions {
  password?: string;
}
