import { lastValueFrom, Observable } from 'rxjs';
import { filter, map } from 'rxjs/operators';
import { DataFrameJSON, dataFrameFromJSON, LiveChannelEventType, LiveChannelScope } from '@grafana/data';
import { getBackendSrv, getDataSourceSrv, getGrafanaLiveSrv } from '@grafana/runtime';

import { DS_TYPE } from '../constants';
import type { AlertFilter, AlertPage, Alert, AuditPage, ChainStatus, HostList, LiveAlert, Stats } from './types';

/** An error from /api/v1 with the server's message and HTTP status. */
export class ApiError extends Error {
  constructor(
    message: string,
    public status?: number
  ) {
    super(message);
  }
}

let cachedUid: string | undefined;

/** The TripWire datasource the app reads from: the first of its type. */
export async function datasourceUid(): Promise<string> {
  if (cachedUid) {
    return cachedUid;
  }
  const list = getDataSourceSrv().getList({ pluginId: DS_TYPE });
  if (list.length === 0) {
    throw new ApiError('No TripWire datasource is configured. Add one under Connections → Data sources.', 404);
  }
  cachedUid = list[0].uid;
  return cachedUid;
}

/** For tests. */
export function resetDatasourceCache() {
  cachedUid = undefined;
}

async function get<T>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
  const uid = await datasourceUid();
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== '') {
      clean[k] = String(v);
    }
  }
  try {
    const resp = await lastValueFrom(
      getBackendSrv().fetch<T>({
        url: `/api/datasources/uid/${uid}/resources/api/v1/${path}`,
        params: clean,
        showErrorAlert: false,
      })
    );
    return resp.data;
  } catch (e: unknown) {
    const err = e as { status?: number; data?: { error?: string; message?: string }; message?: string };
    throw new ApiError(err.data?.error ?? err.data?.message ?? err.message ?? 'request failed', err.status);
  }
}

export const api = {
  listAlerts: (f: AlertFilter, cursor?: string, limit = 200) => get<AlertPage>('alerts', { ...f, cursor, limit }),
  getAlert: (id: string) => get<Alert>(`alerts/${encodeURIComponent(id)}`),
  hosts: () => get<HostList>('hosts'),
  audit: (host: string, cursor?: string, limit = 100) => get<AuditPage>('audit', { host, cursor, limit }),
  verify: (host: string) => get<ChainStatus>('audit/verify', { host }),
  stats: (from?: string, to?: string) => get<Stats>('stats', { from, to }),
};

/** The Grafana Live channel path for a filter; the backend parses the same form. */
export function streamPath(f: Pick<AlertFilter, 'host' | 'type' | 'severity' | 'rule'>): string {
  const parts = ['alerts'];
  for (const key of ['host', 'type', 'severity', 'rule'] as const) {
    const v = f[key];
    if (v) {
      parts.push(`${key}=${v}`);
    }
  }
  return parts.join('/');
}

/** Rows of a stream frame as alerts. */
export function frameToAlerts(json: DataFrameJSON): LiveAlert[] {
  const frame = dataFrameFromJSON(json);
  const col = (name: string) => frame.fields.find((f) => f.name === name)?.values ?? [];
  const time = col('time');
  const out: LiveAlert[] = [];
  for (let i = 0; i < frame.length; i++) {
    out.push({
      alert_id: String(col('alert_id')[i]),
      event_time: new Date(Number(time[i])).toISOString(),
      host_name: String(col('host')[i]),
      event_name: String(col('event')[i]),
      tripwire_type: String(col('type')[i]),
      rule_name: String(col('rule')[i]),
      severity: col('severity')[i] as LiveAlert['severity'],
      summary: String(col('summary')[i] ?? ''),
      seq: (col('seq')[i] as number | null) ?? null,
    });
  }
  return out;
}

/** Live alerts on a filtered channel, batch by batch, as they are committed. */
export function liveAlerts(uid: string, path: string): Observable<LiveAlert[]> {
  return getGrafanaLiveSrv()
    .getStream<DataFrameJSON>({ scope: LiveChannelScope.DataSource, stream: uid, path })
    .pipe(
      filter((ev) => ev.type === LiveChannelEventType.Message),
      map((ev) => frameToAlerts((ev as { message: DataFrameJSON }).message))
    );
}
