import React, { useEffect, useMemo, useRef, useState } from 'react';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import { Button, InlineField, InlineFieldRow, Input, Select, Stack, useStyles2 } from '@grafana/ui';

import { datasourceUid, liveAlerts, streamPath } from '../api/client';
import type { LiveAlert } from '../api/types';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { fmtTime } from '../components/time';
import { testIds } from '../components/testIds';

/** How many alerts the feed keeps on screen. */
export const LIVE_KEEP = 500;

interface FeedState {
  path: string;
  alerts: LiveAlert[]; // shown, newest first
  pending: LiveAlert[]; // arrived while paused, newest first
  counts: Record<string, number>;
}

const emptyFeed = (path: string): FeedState => ({ path, alerts: [], pending: [], counts: {} });

function addToFeed(f: FeedState, fresh: LiveAlert[], paused: boolean): FeedState {
  const newestFirst = [...fresh].reverse();
  const counts = { ...f.counts };
  for (const a of fresh) {
    counts[a.severity] = (counts[a.severity] ?? 0) + 1;
  }
  return paused
    ? { ...f, counts, pending: [...newestFirst, ...f.pending].slice(0, LIVE_KEEP) }
    : { ...f, counts, alerts: [...newestFirst, ...f.alerts].slice(0, LIVE_KEEP) };
}

const SEVERITY_OPTIONS = [
  { label: 'Any severity', value: '' },
  { label: 'CRITICAL', value: 'CRITICAL' },
  { label: 'WARN and up', value: 'WARN,CRITICAL' },
  { label: 'INFO', value: 'INFO' },
];

/**
 * Live: trips as the collector commits them, newest first, through a Grafana
 * Live channel of the datasource whose path carries the filter.
 */
export function Live() {
  const s = useStyles2(getStyles);
  const [uid, setUid] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [paused, setPaused] = useState(false);
  const [severity, setSeverity] = useState('');
  const [hostInput, setHostInput] = useState('');
  const [host, setHost] = useState('');
  const path = useMemo(() => streamPath({ severity, host }), [severity, host]);
  // The feed belongs to one channel path; a new path starts from empty.
  const [feed, setFeed] = useState<FeedState>(emptyFeed(''));
  const current = feed.path === path ? feed : emptyFeed(path);
  const pausedRef = useRef(false);

  useEffect(() => {
    datasourceUid().then(setUid, setError);
  }, []);

  useEffect(() => {
    if (!uid) {
      return;
    }
    const seen = new Set<string>();
    const sub = liveAlerts(uid, path).subscribe({
      next: (batch) => {
        const fresh = batch.filter((a) => !seen.has(a.alert_id));
        fresh.forEach((a) => seen.add(a.alert_id));
        if (fresh.length > 0) {
          setFeed((f) => addToFeed(f.path === path ? f : emptyFeed(path), fresh, pausedRef.current));
        }
      },
      error: setError,
    });
    return () => sub.unsubscribe();
  }, [uid, path]);

  const pause = () => {
    pausedRef.current = true;
    setPaused(true);
  };
  const resume = () => {
    pausedRef.current = false;
    setPaused(false);
    setFeed((f) => ({ ...f, alerts: [...f.pending, ...f.alerts].slice(0, LIVE_KEEP), pending: [] }));
  };
  const { alerts, pending, counts } = current;

  let body: React.ReactNode;
  if (error) {
    body = <ErrorView title="The live feed is unavailable" error={error} onRetry={() => window.location.reload()} />;
  } else if (!uid) {
    body = <Loading what="the live feed" />;
  } else if (alerts.length === 0) {
    body = (
      <Empty message="Waiting for trips…">
        New alerts appear here the moment the collector stores them{path !== 'alerts' ? ' (filtered)' : ''}.
      </Empty>
    );
  } else {
    body = (
      <table className={s.table} data-testid={testIds.live.table}>
        <thead>
          <tr>
            <th>Time</th>
            <th>Severity</th>
            <th>Host</th>
            <th>Type</th>
            <th>Rule</th>
            <th>Summary</th>
          </tr>
        </thead>
        <tbody>
          {alerts.map((a) => (
            <tr key={a.alert_id} className={s.row(a.severity)}>
              <td className={s.nowrap}>{fmtTime(a.event_time)}</td>
              <td>
                <StatusBadge value={a.severity} />
              </td>
              <td>{a.host_name}</td>
              <td>{a.tripwire_type}</td>
              <td>{a.rule_name}</td>
              <td>{a.summary}</td>
            </tr>
          ))}
        </tbody>
      </table>
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
              onChange={(v) => setSeverity(v.value ?? '')}
            />
          </InlineField>
          <InlineField label="Host" labelWidth={8}>
            <Input
              width={20}
              placeholder="any"
              value={hostInput}
              onChange={(e) => setHostInput(e.currentTarget.value)}
              onBlur={() => setHost(hostInput.trim())}
              onKeyDown={(e) => e.key === 'Enter' && setHost(hostInput.trim())}
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
        </div>
        {body}
      </Stack>
    </PluginPage>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  table: css({
    width: '100%',
    borderCollapse: 'collapse',
    'th, td': {
      padding: theme.spacing(0.5, 1),
      textAlign: 'left',
      borderBottom: `1px solid ${theme.colors.border.weak}`,
    },
  }),
  row: (severity: string) =>
    css({
      borderLeft: `4px solid ${
        severity === 'CRITICAL'
          ? theme.colors.error.main
          : severity === 'WARN'
            ? theme.colors.warning.main
            : theme.colors.info.main
      }`,
    }),
  nowrap: css({ whiteSpace: 'nowrap' }),
  counts: css({ display: 'flex', gap: theme.spacing(2), alignItems: 'center', color: theme.colors.text.secondary }),
});

export default Live;
