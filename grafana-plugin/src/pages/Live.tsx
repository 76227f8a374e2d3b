import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { Subscription } from 'rxjs';
import { css } from '@emotion/css';
import { GrafanaTheme2, LiveChannelConnectionState } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import {
  Alert as AlertBox,
  Button,
  Column,
  InlineField,
  InlineFieldRow,
  Input,
  InteractiveTable,
  Select,
  Stack,
  useStyles2,
} from '@grafana/ui';

import { api, liveFeed } from '../api/client';
import type { LiveAlert } from '../api/types';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { fmtTime } from '../components/time';
import { testIds } from '../components/testIds';
import { TriageBadge } from '../components/Triage';
import { withParams } from '../components/urlParams';

/** How many alerts the feed keeps on screen. */
export const LIVE_KEEP = 500;
/** How many of the newest stored alerts fill the feed on (re)connect. */
export const LIVE_BACKFILL = 50;

/** The Live page's filters, all in the URL so a view can be shared. */
export const LIVE_FILTER_KEYS = ['severity', 'host', 'state'] as const;

interface FeedState {
  key: string; // the filter the rows belong to
  alerts: LiveAlert[]; // shown, newest first
  pending: LiveAlert[]; // arrived while paused, newest first
  seen: Set<string>;
  counts: Record<string, number>;
}

const emptyFeed = (key: string): FeedState => ({ key, alerts: [], pending: [], seen: new Set(), counts: {} });

const newestFirst = (a: LiveAlert, b: LiveAlert) =>
  b.event_time.localeCompare(a.event_time) || b.alert_id.localeCompare(a.alert_id);

/** Whether an alert's triage state is one the view's state filter (comma-separated, empty for any) wants. */
export function stateWanted(state: string, a: LiveAlert): boolean {
  return state === '' || state.split(',').includes(a.triage?.state ?? 'OPEN');
}

/**
 * Adds new rows not shown yet (a replayed or backfilled row is never shown
 * twice) and applies triage changes: a shown alert is updated in place, or
 * removed when the view's state filter no longer wants it; an alert not
 * shown is added only when the view filters by a state it now has (an
 * alert acknowledged while an "Acknowledged" view is open), never counted
 * as a new trip.
 */
function addToFeed(f: FeedState, rows: LiveAlert[], paused: boolean, state: string): FeedState {
  const changes = new Map<string, LiveAlert>();
  const fresh: LiveAlert[] = [];
  for (const a of rows) {
    if (a.triage_changed) {
      changes.set(a.alert_id, a);
    } else if (!f.seen.has(a.alert_id) && stateWanted(state, a) && !fresh.some((b) => b.alert_id === a.alert_id)) {
      fresh.push(a);
    }
  }
  if (fresh.length === 0 && changes.size === 0) {
    return f;
  }
  const seen = new Set(f.seen);
  const counts = { ...f.counts };
  for (const a of fresh) {
    seen.add(a.alert_id);
    counts[a.severity] = (counts[a.severity] ?? 0) + 1;
  }
  const update = (list: LiveAlert[]) =>
    list.flatMap((a) => {
      const c = changes.get(a.alert_id);
      if (!c) {
        return [a];
      }
      changes.delete(a.alert_id);
      if (!stateWanted(state, c)) {
        seen.delete(a.alert_id);
        return [];
      }
      return [{ ...a, triage: c.triage }];
    });
  let alerts = update(f.alerts);
  let pending = update(f.pending);
  for (const c of changes.values()) {
    if (state !== '' && stateWanted(state, c) && !seen.has(c.alert_id)) {
      seen.add(c.alert_id);
      fresh.push(c);
    }
  }
  const merge = (list: LiveAlert[]) => [...fresh, ...list].sort(newestFirst).slice(0, LIVE_KEEP);
  if (paused) {
    pending = merge(pending);
  } else {
    alerts = merge(alerts);
  }
  return { ...f, seen, counts, alerts, pending };
}

const SEVERITY_OPTIONS = [
  { label: 'Any severity', value: '' },
  { label: 'CRITICAL', value: 'CRITICAL' },
  { label: 'WARN and up', value: 'WARN,CRITICAL' },
  { label: 'INFO', value: 'INFO' },
];

/**
 * Triage filters, applied here: the Live page's channel carries new trips
 * (OPEN) and every triage change to an alert its other filters match, so a
 * row changes state in place, or leaves a view whose state it no longer
 * matches.
 */
const STATE_OPTIONS = [
  { label: 'Any state', value: '' },
  { label: 'Unacknowledged', value: 'OPEN' },
  { label: 'Acknowledged', value: 'ACKNOWLEDGED' },
];

const COLUMNS: Array<Column<LiveAlert>> = [
  { id: 'event_time', header: 'Time', cell: ({ row }) => fmtTime(row.original.event_time), disableGrow: true },
  { id: 'severity', header: 'Severity', cell: ({ row }) => <StatusBadge value={row.original.severity} /> },
  { id: 'triage', header: 'State', cell: ({ row }) => <TriageBadge triage={row.original.triage} /> },
  { id: 'host_name', header: 'Host' },
  { id: 'tripwire_type', header: 'Type' },
  { id: 'rule_name', header: 'Rule' },
  { id: 'summary', header: 'Summary' },
];

/**
 * Live: trips as the collector commits them, newest first, through the Grafana
 * Live channel the backend names for the filter. The newest stored trips fill
 * the feed when the channel connects and again after a reconnect, so a gap
 * while disconnected is closed; rows are de-duplicated by alert id.
 */
export function Live() {
  const s = useStyles2(getStyles);
  const [params, setParams] = useSearchParams();
  const severity = params.get('severity') ?? '';
  const host = params.get('host') ?? '';
  const state = params.get('state') ?? '';
  const key = `${severity}\u0000${host}\u0000${state}`;

  const [feed, setFeed] = useState<FeedState>(emptyFeed(key));
  const current = feed.key === key ? feed : emptyFeed(key);
  const [status, setStatus] = useState<{ key: string; state?: LiveChannelConnectionState; reconnects: number }>({
    key,
    reconnects: 0,
  });
  const [error, setError] = useState<{ key: string; error: unknown }>();
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);

  useEffect(() => {
    let cancelled = false;
    let sub: Subscription | undefined;
    const filter = { severity, host };
    const add = (rows: LiveAlert[]) =>
      !cancelled && setFeed((f) => addToFeed(f.key === key ? f : emptyFeed(key), rows, pausedRef.current, state));
    const fail = (e: unknown) => !cancelled && setError({ key, error: e });
    // Stored rows come with their triage: besides filling the feed, they
    // refresh the state of rows already shown, which Grafana Live does not
    // replay after the browser's own reconnect.
    const backfill = () =>
      api
        .listAlerts(state ? { ...filter, state } : filter, undefined, LIVE_BACKFILL)
        .then((p) => add([...p.alerts, ...p.alerts.map((a) => ({ ...a, triage_changed: true as const }))]), fail);

    api.liveChannel(filter).then(({ channel }) => {
      if (cancelled) {
        return;
      }
      let connectedOnce = false;
      let lost = false;
      sub = liveFeed(channel).subscribe({
        next: (ev) => {
          switch (ev.kind) {
            case 'rows':
              add(ev.alerts);
              break;
            case 'error':
              fail(new Error(ev.message));
              break;
            case 'state':
              if (ev.state === LiveChannelConnectionState.Disconnected) {
                lost = true;
              }
              if (ev.state === LiveChannelConnectionState.Connected) {
                // Grafana clears a channel's error once it (re)subscribes.
                setError(undefined);
                if (!connectedOnce || lost) {
                  backfill();
                }
                const reconnected = connectedOnce && lost ? 1 : 0;
                setStatus((st) => ({
                  key,
                  state: ev.state,
                  reconnects: (st.key === key ? st.reconnects : 0) + reconnected,
                }));
                connectedOnce = true;
                lost = false;
                return;
              }
              setStatus((st) => ({ key, state: ev.state, reconnects: st.key === key ? st.reconnects : 0 }));
              break;
          }
        },
        error: fail,
        complete: () =>
          !cancelled &&
          setStatus((st) => ({
            key,
            state: LiveChannelConnectionState.Shutdown,
            reconnects: st.key === key ? st.reconnects : 0,
          })),
      });
    }, fail);
    return () => {
      cancelled = true;
      sub?.unsubscribe();
    };
  }, [key, severity, host, state]);

  const setFilter = useCallback(
    (name: (typeof LIVE_FILTER_KEYS)[number], value: string) =>
      setParams((prev) => withParams(prev, { [name]: value })),
    [setParams]
  );

  const pause = () => {
    pausedRef.current = true;
    setPaused(true);
  };
  const resume = () => {
    pausedRef.current = false;
    setPaused(false);
    setFeed((f) => ({ ...f, alerts: [...f.pending, ...f.alerts].sort(newestFirst).slice(0, LIVE_KEEP), pending: [] }));
  };
  const { alerts, pending, counts } = current;
  const st = status.key === key ? status : { state: undefined, reconnects: 0 };
  const err = error?.key === key ? error.error : undefined;
  const data = useMemo(() => alerts, [alerts]);

  let connection: React.ReactNode = null;
  if (st.state === LiveChannelConnectionState.Disconnected) {
    connection = (
      <AlertBox severity="warning" title="Connection to Grafana Live lost: reconnecting…">
        Trips committed meanwhile are loaded when the channel is back.
      </AlertBox>
    );
  } else if (st.state === LiveChannelConnectionState.Shutdown) {
    connection = <AlertBox severity="warning" title="The live channel was closed by Grafana." />;
  }

  let body: React.ReactNode;
  if (err && alerts.length === 0) {
    body = <ErrorView title="The live feed is unavailable" error={err} onRetry={() => window.location.reload()} />;
  } else if (st.state === undefined && alerts.length === 0) {
    body = <Loading what="the live feed" />;
  } else if (alerts.length === 0 && state !== '' && !state.split(',').includes('OPEN')) {
    body = (
      <Empty message="No acknowledged trips among the newest">
        Trips acknowledged while you watch appear here; new trips are unacknowledged.
      </Empty>
    );
  } else if (alerts.length === 0) {
    body = (
      <Empty message="Waiting for trips…">
        New alerts appear here the moment the collector stores them{severity || host || state ? ' (filtered)' : ''}.
      </Empty>
    );
  } else {
    body = (
      <div data-testid={testIds.live.table}>
        {err ? <ErrorView title="The live feed is interrupted" error={err} /> : null}
        <InteractiveTable columns={COLUMNS} data={data} getRowId={(a) => a.alert_id} />
      </div>
    );
  }

  return (
    <PluginPage>
      <Stack direction="column" gap={2}>
        <InlineFieldRow>
          <InlineField label="Severity" labelWidth={10}>
            <Select
              inputId="live-severity"
              width={20}
              options={SEVERITY_OPTIONS}
              value={severity}
              onChange={(v) => setFilter('severity', v.value ?? '')}
            />
          </InlineField>
          <InlineField label="State" labelWidth={8}>
            <Select
              inputId="live-state"
              width={20}
              options={STATE_OPTIONS}
              value={state}
              onChange={(v) => setFilter('state', v.value ?? '')}
            />
          </InlineField>
          <InlineField label="Host" labelWidth={8}>
            {/* Uncontrolled, keyed by the URL's value: typing is not a
                subscription, Enter or leaving the field commits, and a URL
                change (back button) resets it. */}
            <Input
              key={`host=${host}`}
              width={20}
              placeholder="any"
              defaultValue={host}
              onBlur={(e) => setFilter('host', e.currentTarget.value.trim())}
              onKeyDown={(e) => e.key === 'Enter' && setFilter('host', e.currentTarget.value.trim())}
            />
          </InlineField>
          {paused ? (
            <Button icon="play" onClick={resume} data-testid={testIds.live.resume}>
              Resume{pending.length > 0 ? ` (${pending.length} new)` : ''}
            </Button>
          ) : (
            <Button icon="pause" variant="secondary" onClick={pause} data-testid={testIds.live.pause}>
              Pause
            </Button>
          )}
        </InlineFieldRow>
        <div className={s.counts} data-testid={testIds.live.counts}>
          {['CRITICAL', 'WARN', 'INFO'].map((sev) => (
            <span key={sev}>
              <StatusBadge value={sev} /> {counts[sev] ?? 0}
            </span>
          ))}
          <span>since opened</span>
          <span data-testid={testIds.live.state}>
            {st.state ?? 'connecting'}
            {st.reconnects > 0 ? `, reconnected ${st.reconnects}×` : ''}
          </span>
        </div>
        {connection}
        {body}
      </Stack>
    </PluginPage>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  counts: css({ display: 'flex', gap: theme.spacing(2), alignItems: 'center', color: theme.colors.text.secondary }),
});

export default Live;
