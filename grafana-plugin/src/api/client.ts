import { lastValueFrom, Observable, of } from 'rxjs';
import { mergeMap } from 'rxjs/operators';
import {
  DataFrameJSON,
  dataFrameFromJSON,
  isLiveChannelMessageEvent,
  isLiveChannelStatusEvent,
  isValidLiveChannelAddress,
  LiveChannelConnectionState,
  parseLiveChannelAddress,
} from '@grafana/data';
import { getBackendSrv, getDataSourceSrv, getGrafanaLiveSrv, toDataQueryError } from '@grafana/runtime';

import { DS_TYPE } from '../constants';
import type {
  AlertFilter,
  AlertPage,
  Alert,
  AuditPage,
  ChainStatus,
  HostList,
  LiveAlert,
  Stats,
  TriageState,
} from './types';

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

/** A POST to /api/v1: the API's one write, retiring a host (Admin). */
async function post<T>(path: string): Promise<T> {
  const uid = await datasourceUid();
  try {
    const resp = await lastValueFrom(
      getBackendSrv().fetch<T>({
        url: `/api/datasources/uid/${uid}/resources/api/v1/${path}`,
        method: 'POST',
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
  getAlert: (id: string, host?: string) => get<Alert>(`alerts/${encodeURIComponent(id)}`, { host }),
  hosts: () => get<HostList>('hosts'),
  /** Retire a decommissioned host: no offline alerts; a new certificate re-activates it. Admin only. */
  retireHost: (name: string) => post<{ host_name: string; status: string }>(`hosts/${encodeURIComponent(name)}/retire`),
  audit: (host: string, cursor?: string, limit = 100, from?: string, to?: string) =>
    get<AuditPage>('audit', { host, cursor, limit, from, to }),
  verify: (host: string) => get<ChainStatus>('audit/verify', { host }),
  stats: (from?: string, to?: string) => get<Stats>('stats', { from, to }),
  /** The Grafana Live channel for a filter: only the backend encodes channel paths. */
  liveChannel: (f: Pick<AlertFilter, 'host' | 'type' | 'severity' | 'rule'>) =>
    get<{ channel: string }>('live', { host: f.host, type: f.type, severity: f.severity, rule: f.rule }),
};

/**
 * Rows of a stream frame as alerts. A triage change's row (triage_changed,
 * on the Live page's channel) carries the alert's stored triage and is
 * marked triage_changed; a new alert's row carries neither.
 */
export function frameToAlerts(json: DataFrameJSON): LiveAlert[] {
  const frame = dataFrameFromJSON(json);
  // Looked up by name for every row's every field: a map, not a search.
  const byName = new Map(frame.fields.map((f) => [f.name, f.values]));
  const col = (name: string) => byName.get(name) ?? [];
  const time = col('time');
  const changed = col('triage_changed');
  const opt = (name: string, i: number) => (col(name)[i] == null ? undefined : String(col(name)[i]));
  const out: LiveAlert[] = [];
  for (let i = 0; i < frame.length; i++) {
    const triage: Partial<LiveAlert> = {};
    if (changed[i] === true) {
      triage.triage_changed = true;
      triage.triage = {
        state: (opt('triage_state', i) ?? 'OPEN') as TriageState,
        assignee: opt('triage_assignee', i),
        updated_by: opt('triage_updated_by', i),
        updated_at:
          col('triage_updated_at')[i] == null ? undefined : new Date(Number(col('triage_updated_at')[i])).toISOString(),
      };
    }
    out.push({
      ...triage,
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

/** What the Live page learns from a channel, in Grafana Live's own terms. */
export type LiveFeedEvent =
  /** Rows to show (from a Message, or a Status carrying subscribe-time data). */
  | { kind: 'rows'; alerts: LiveAlert[] }
  /** The connection state changed (pending, connected, disconnected, shutdown, invalid). */
  | { kind: 'state'; state: LiveChannelConnectionState }
  /** Grafana reported an error on the channel; the reason is kept. */
  | { kind: 'error'; message: string };

/**
 * The events of a Grafana Live channel, read as Grafana's own LiveDataStream
 * reads them (public/app/features/live/centrifuge/LiveDataStream.ts and
 * channel.ts): subscribe-time data and subscription errors arrive as *Status*
 * events, not Messages; a Status in the Connected or Pending state may carry
 * a frame; a Status with an error carries the reason; Disconnected and then
 * Connected again is a reconnect.
 */
export function liveFeed(channel: string): Observable<LiveFeedEvent> {
  const addr = parseLiveChannelAddress(channel);
  if (!addr || !isValidLiveChannelAddress(addr)) {
    return of({ kind: 'error', message: `invalid channel address ${channel}` } as LiveFeedEvent);
  }
  return getGrafanaLiveSrv()
    .getStream<DataFrameJSON>(addr)
    .pipe(
      mergeMap((evt): LiveFeedEvent[] => {
        if (isLiveChannelMessageEvent(evt)) {
          return [{ kind: 'rows', alerts: frameToAlerts(evt.message) }];
        }
        if (!isLiveChannelStatusEvent(evt)) {
          return []; // join/leave
        }
        const out: LiveFeedEvent[] = [{ kind: 'state', state: evt.state }];
        if (evt.error) {
          out.push({ kind: 'error', message: `Streaming channel error: ${toDataQueryError(evt.error).message}` });
        }
        if (
          (evt.state === LiveChannelConnectionState.Connected || evt.state === LiveChannelConnectionState.Pending) &&
          evt.message
        ) {
          out.push({ kind: 'rows', alerts: frameToAlerts(evt.message as DataFrameJSON) });
        }
        return out;
      })
    );
}
