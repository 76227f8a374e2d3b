import React, { useCallback, useMemo, useRef, useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { FixedSizeList, ListChildComponentProps } from 'react-window';
import { css, cx } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import { Button, Drawer, InlineField, InlineFieldRow, Input, Select, Stack, useStyles2 } from '@grafana/ui';

import { api } from '../api/client';
import type { Alert, AlertFilter } from '../api/types';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { fmtTime } from '../components/time';
import { useAsync } from '../components/useAsync';
import { testIds } from '../components/testIds';
import { SEVERITIES, TYPES } from '../datasource/types';

/** The filters the URL carries; the same names as /api/v1/alerts takes. */
export const FILTER_KEYS = ['host', 'type', 'severity', 'rule', 'q', 'from', 'to'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

const ROW_HEIGHT = 36;
const PAGE = 200;

export function filterFromParams(params: URLSearchParams): AlertFilter {
  const f: AlertFilter = {};
  for (const k of FILTER_KEYS) {
    const v = params.get(k);
    if (v) {
      f[k] = v;
    }
  }
  return f;
}

const anyOption = (label: string) => [{ label, value: '' }];

/**
 * Alerts: the explorer. Filters live in the URL (so a view can be shared and
 * the back button works), rows in a virtualised list fed page by page with
 * the keyset cursor, details in a drawer that is part of the URL too.
 */
export function Alerts({ height = 600 }: { height?: number }) {
  const s = useStyles2(getStyles);
  const [params, setParams] = useSearchParams();
  const filter = useMemo(() => filterFromParams(params), [params]);
  const filterKey = FILTER_KEYS.map((k) => filter[k] ?? '').join('\u0000');
  const selected = params.get('alert');

  const first = useAsync(() => api.listAlerts(filter, undefined, PAGE), filterKey);
  // Later pages, kept with the request they extend so a filter change drops them.
  const [more, setMore] = useState<{ key: string; alerts: Alert[]; next?: string; error?: unknown }>();
  const loadingMore = useRef(false);
  const extra = more?.key === first.key ? more : undefined;
  const alerts = useMemo(() => [...(first.data?.alerts ?? []), ...(extra?.alerts ?? [])], [first.data, extra]);
  const next = extra ? extra.next : first.data?.next_cursor;
  const error = first.error ?? extra?.error;

  const setFilter = useCallback(
    (key: FilterKey, value: string | undefined) => {
      setParams((prev) => {
        const p = new URLSearchParams(prev);
        if (value) {
          p.set(key, value);
        } else {
          p.delete(key);
        }
        return p;
      });
    },
    [setParams]
  );

  const setSelected = (id: string | undefined) =>
    setParams((prev) => {
      const p = new URLSearchParams(prev);
      if (id) {
        p.set('alert', id);
      } else {
        p.delete('alert');
      }
      return p;
    });

  const loadMore = useCallback(() => {
    if (!next || loadingMore.current) {
      return;
    }
    loadingMore.current = true;
    const key = first.key;
    const have = extra?.alerts ?? [];
    api
      .listAlerts(filter, next, PAGE)
      .then(
        (page) => setMore({ key, alerts: [...have, ...page.alerts], next: page.next_cursor }),
        (e) => setMore({ key, alerts: have, next, error: e })
      )
      .finally(() => {
        loadingMore.current = false;
      });
  }, [filter, next, first.key, extra]);

  // Text filters are uncontrolled inputs keyed by their URL value: typing is
  // not a query, Enter or leaving the field commits, and a URL change (back
  // button) resets them.
  const textProps = (key: 'host' | 'rule' | 'q') => ({
    defaultValue: filter[key] ?? '',
    onBlur: (e: React.FocusEvent<HTMLInputElement>) => setFilter(key, e.currentTarget.value.trim()),
    onKeyDown: (e: React.KeyboardEvent<HTMLInputElement>) =>
      e.key === 'Enter' && setFilter(key, e.currentTarget.value.trim()),
  });

  const Row = ({ index, style }: ListChildComponentProps) => {
    const a = alerts[index];
    return (
      <div
        style={style}
        className={cx(s.row, s.grid)}
        role="row"
        data-testid={testIds.alerts.row}
        onClick={() => setSelected(a.alert_id)}
      >
        <span className={s.cell}>{fmtTime(a.event_time)}</span>
        <span className={s.cell}>
          <StatusBadge value={a.severity} />
        </span>
        <span className={s.cell}>{a.host_name}</span>
        <span className={s.cell}>{a.tripwire_type}</span>
        <span className={s.cell}>{a.rule_name}</span>
        <span className={s.cell}>{a.summary}</span>
      </div>
    );
  };

  let body: React.ReactNode;
  if (error && alerts.length === 0) {
    body = <ErrorView title="Could not load alerts" error={error} onRetry={first.retry} />;
  } else if (first.loading) {
    body = <Loading what="alerts" />;
  } else if (alerts.length === 0) {
    body = (
      <Empty message={Object.keys(filter).length ? 'No alert matches these filters' : 'No alerts yet'}>
        {Object.keys(filter).length
          ? 'Widen the filters or the time range.'
          : 'Trips appear here once agents report them.'}
      </Empty>
    );
  } else {
    body = (
      <div data-testid={testIds.alerts.table} role="table">
        <div className={cx(s.grid, s.header)} role="row">
          <span>Time</span>
          <span>Severity</span>
          <span>Host</span>
          <span>Type</span>
          <span>Rule</span>
          <span>Summary</span>
        </div>
        <FixedSizeList
          height={Math.min(height, alerts.length * ROW_HEIGHT)}
          itemCount={alerts.length}
          itemSize={ROW_HEIGHT}
          width="100%"
          onItemsRendered={({ visibleStopIndex }) => visibleStopIndex >= alerts.length - 20 && loadMore()}
        >
          {Row}
        </FixedSizeList>
        <div className={s.footer}>
          {alerts.length} alerts shown
          {next && (
            <Button size="sm" variant="secondary" onClick={loadMore} data-testid={testIds.alerts.loadMore}>
              Load more
            </Button>
          )}
        </div>
      </div>
    );
  }

  return (
    <PluginPage>
      <Stack direction="column" gap={2}>
        <InlineFieldRow>
          <InlineField label="Host" labelWidth={8}>
            <Input
              key={`host=${filter.host ?? ''}`}
              aria-label="host filter"
              width={18}
              placeholder="any"
              {...textProps('host')}
            />
          </InlineField>
          <InlineField label="Type" labelWidth={8}>
            <Select
              aria-label="type filter"
              width={16}
              options={[...anyOption('Any type'), ...TYPES.map((t) => ({ label: t, value: t }))]}
              value={filter.type ?? ''}
              onChange={(v) => setFilter('type', v.value)}
            />
          </InlineField>
          <InlineField label="Severity" labelWidth={10}>
            <Select
              aria-label="severity filter"
              width={18}
              options={[...anyOption('Any severity'), ...SEVERITIES.map((t) => ({ label: t, value: t }))]}
              value={filter.severity ?? ''}
              onChange={(v) => setFilter('severity', v.value)}
            />
          </InlineField>
          <InlineField label="Rule" labelWidth={8}>
            <Input
              key={`rule=${filter.rule ?? ''}`}
              aria-label="rule filter"
              width={18}
              placeholder="any"
              {...textProps('rule')}
            />
          </InlineField>
          <InlineField label="Search" labelWidth={10}>
            <Input
              key={`q=${filter.q ?? ''}`}
              aria-label="text search"
              width={24}
              placeholder="summary, path, command…"
              {...textProps('q')}
            />
          </InlineField>
          <InlineField label="Since" labelWidth={8}>
            <Select
              aria-label="time filter"
              width={16}
              options={SINCE_OPTIONS}
              value={SINCE_OPTIONS.find((o) => o.value === sinceOf(filter.from))?.value ?? ''}
              onChange={(v) => setFilter('from', v.value ? new Date(Date.now() - Number(v.value)).toISOString() : '')}
            />
          </InlineField>
        </InlineFieldRow>
        {body}
      </Stack>
      {selected && <AlertDrawer id={selected} onClose={() => setSelected(undefined)} />}
    </PluginPage>
  );
}

const SINCE_OPTIONS = [
  { label: 'Any time', value: '' },
  { label: 'Last hour', value: String(3600e3) },
  { label: 'Last 24 h', value: String(86400e3) },
  { label: 'Last 7 days', value: String(7 * 86400e3) },
];

/** Best-matching "since" option for an absolute from, for display only. */
function sinceOf(from?: string): string {
  if (!from) {
    return '';
  }
  const age = Date.now() - Date.parse(from);
  const match = SINCE_OPTIONS.filter((o) => o.value).find(
    (o) => Math.abs(Number(o.value) - age) < Number(o.value) * 0.1
  );
  return match?.value ?? '';
}

/** Every field of one alert and its raw canonical event. */
export function AlertDrawer({ id, onClose }: { id: string; onClose: () => void }) {
  const s = useStyles2(getStyles);
  const { data: alert, error } = useAsync(() => api.getAlert(id), id);

  return (
    <Drawer title="Alert" subtitle={id} onClose={onClose} size="md">
      <div data-testid={testIds.alerts.drawer}>
        {error ? (
          <ErrorView title="Could not load the alert" error={error} />
        ) : !alert ? (
          <Loading what="the alert" />
        ) : (
          <>
            <table className={s.detail}>
              <tbody>
                {(
                  [
                    ['Severity', <StatusBadge key="s" value={alert.severity} />],
                    ['Event time', fmtTime(alert.event_time)],
                    ['Received', fmtTime(alert.received_at)],
                    ['Host', alert.host_name],
                    ['Event', alert.event_name],
                    ['Type', alert.tripwire_type],
                    ['Rule', alert.rule_name],
                    ['Chain seq', alert.seq ?? '—'],
                    ['Summary', alert.summary],
                    ...Object.entries(alert.event_detail ?? {})
                      .sort(([a], [b]) => a.localeCompare(b))
                      .map(([k, v]) => [k, String(v)]),
                  ] as Array<[string, React.ReactNode]>
                ).map(([k, v]) => (
                  <tr key={k}>
                    <th>{k}</th>
                    <td>{v}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <h4>Raw event</h4>
            <pre className={s.raw}>{JSON.stringify(alert.event_detail, null, 2)}</pre>
          </>
        )}
      </div>
    </Drawer>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  grid: css({
    display: 'grid',
    gridTemplateColumns: '190px 100px 140px 90px 160px 1fr',
    alignItems: 'center',
    gap: theme.spacing(1),
    padding: theme.spacing(0, 1),
  }),
  header: css({
    fontWeight: theme.typography.fontWeightMedium,
    height: ROW_HEIGHT,
    borderBottom: `1px solid ${theme.colors.border.medium}`,
  }),
  row: css({
    cursor: 'pointer',
    borderBottom: `1px solid ${theme.colors.border.weak}`,
    '&:hover': { background: theme.colors.action.hover },
  }),
  cell: css({ overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap' }),
  footer: css({
    display: 'flex',
    gap: theme.spacing(2),
    alignItems: 'center',
    padding: theme.spacing(1),
    color: theme.colors.text.secondary,
  }),
  detail: css({
    width: '100%',
    th: {
      textAlign: 'left',
      paddingRight: theme.spacing(2),
      verticalAlign: 'top',
      whiteSpace: 'nowrap',
      fontWeight: theme.typography.fontWeightMedium,
    },
    td: { wordBreak: 'break-all' },
  }),
  raw: css({ maxHeight: 400, overflow: 'auto', fontSize: theme.typography.bodySmall.fontSize }),
});

export default Alerts;
