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
  const [alerts, setAlerts] = useState<LiveAlert[]>([]);
  const [pending, setPending] = useState<LiveAlert[]>([]);
  const [paused, setPaused] = useState(false);
  const [severity, setSeverity] = useState('');
  const [hostInput, setHostInput] = useState('');
  const [host, setHost] = useState('');
  const [counts, setCounts] = useState<Record<string, number>>({});
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    datasourceUid().then(setUid, setError);
  }, []);

  const path = useMemo(() => streamPath({ severity, host }), [severity, host]);

  useEffect(() => {
    if (!uid) {
      return;
    }
    setAlerts([]);
    setPending([]);
    setCounts({});
    const seen = new Set<string>();
    const sub = liveAlerts(uid, path).subscribe({
      next: (batch) => {
        const fresh = batch.filter((a) => !seen.has(a.alert_id));
        fresh.forEach((a) => seen.add(a.alert_id));
        if (fresh.length === 0) {
          return;
        }
        const newestFirst = [...fresh].reverse();
        setCounts((c) => {
          const next = { ...c };
          for (const a of fresh) {
            next[a.severity] = (next[a.severity] ?? 0) + 1;
          }
          return next;
        });
        if (pausedRef.current) {
          setPending((p) => [...newestFirst, ...p].slice(0, LIVE_KEEP));
        } else {
          setAlerts((cur) => [...newestFirst, ...cur].slice(0, LIVE_KEEP));
        }
      },
      error: setError,
    });
    return () => sub.unsubscribe();
  }, [uid, path]);

  const resume = () => {
    setAlerts((cur) => [...pending, ...cur].slice(0, LIVE_KEEP));
    setPending([]);
    setPaused(false);
  };

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
            <Button icon="pause" variant="secondary" onClick={() => setPaused(true)} data-testid={testIds.live.pause}>
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
