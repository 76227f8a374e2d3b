import React, { useCallback, useMemo, useRef, useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { useAsyncRetry } from 'react-use';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import {
  Button,
  Column,
  Drawer,
  InlineField,
  InlineFieldRow,
  Input,
  InteractiveTable,
  Select,
  Stack,
  useStyles2,
} from '@grafana/ui';

import { api } from '../api/client';
import { TRIAGE_STATES } from '../api/triage';
import type { Alert, AlertFilter, AlertTriage, Triage } from '../api/types';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { fmtTime } from '../components/time';
import { apiRange, PageTimeRangePicker, useUrlTimeRange } from '../components/TimeRange';
import { testIds } from '../components/testIds';
import { TriageBadge, TriagePanel, useBulkTriage } from '../components/Triage';
import { withParams } from '../components/urlParams';
import { SEVERITIES, TYPES } from '../datasource/types';

/** The filters the URL carries besides the time range; the names /api/v1/alerts takes. */
export const FILTER_KEYS = ['host', 'type', 'severity', 'rule', 'state', 'assignee', 'q'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

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
 * Alerts: the explorer. Filters and the time range live in the URL (so a
 * view can be shared and the back button works), rows in Grafana's table fed
 * page by page with the keyset cursor, details in a drawer that is part of
 * the URL too.
 */
export function Alerts() {
  const s = useStyles2(getStyles);
  const [params, setParams] = useSearchParams();
  const time = useUrlTimeRange();
  const { from, to } = apiRange(time.range);
  const filter = useMemo(() => ({ ...filterFromParams(params), from, to }), [params, from, to]);
  const filterKey = JSON.stringify(filter);
  const selected = params.get('alert');
  // An alert id is unique per host, not across hosts: the drawer asks for both.
  const selectedHost = params.get('alert_host') ?? undefined;
  const openAlert = useCallback(
    (id: string | undefined, host?: string) =>
      setParams((prev) => withParams(prev, { alert: id, alert_host: id ? host : undefined })),
    [setParams]
  );

  const first = useAsyncRetry(() => api.listAlerts(filter, undefined, PAGE), [filterKey]);
  // Later pages, kept with the request they extend so a filter change drops them.
  const [more, setMore] = useState<{ key: string; alerts: Alert[]; next?: string; error?: unknown }>();
  const loadingMore = useRef(false);
  const extra = more?.key === filterKey ? more : undefined;
  const alerts = useMemo(() => [...(first.value?.alerts ?? []), ...(extra?.alerts ?? [])], [first.value, extra]);
  const next = extra ? extra.next : first.value?.next_cursor;
  const error = first.error ?? extra?.error;
  // Triage changed in the drawer, by host and id: the row shows it without
  // reloading (the filters apply on the next load).
  const [triaged, setTriaged] = useState<Record<string, Triage>>({});
  const triageOf = useCallback((a: Alert) => triaged[`${a.host_name}/${a.alert_id}`] ?? a.triage, [triaged]);
  const bulk = useBulkTriage(alerts, triageOf, (changed) =>
    setTriaged((prev) => {
      const next = { ...prev };
      for (const { ref, triage } of changed) {
        next[`${ref.host_name}/${ref.alert_id}`] = triage;
      }
      return next;
    })
  );

  const setParam = useCallback(
    (key: FilterKey, value: string | undefined) => setParams((prev) => withParams(prev, { [key]: value })),
    [setParams]
  );

  const loadMore = () => {
    if (!next || loadingMore.current) {
      return;
    }
    loadingMore.current = true;
    const key = filterKey;
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
  };

  const columns = useMemo<Array<Column<Alert>>>(
    () => [
      ...(bulk.column ? [bulk.column] : []),
      {
        id: 'event_time',
        header: 'Time',
        disableGrow: true,
        cell: ({ row }) => (
          <Button
            fill="text"
            size="sm"
            data-testid={testIds.alerts.row}
            onClick={() => openAlert(row.original.alert_id, row.original.host_name)}
          >
            {fmtTime(row.original.event_time)}
          </Button>
        ),
      },
      { id: 'severity', header: 'Severity', cell: ({ row }) => <StatusBadge value={row.original.severity} /> },
      { id: 'triage', header: 'State', cell: ({ row }) => <TriageBadge triage={triageOf(row.original)} /> },
      { id: 'host_name', header: 'Host' },
      { id: 'tripwire_type', header: 'Type' },
      { id: 'rule_name', header: 'Rule' },
      { id: 'summary', header: 'Summary' },
    ],
    [openAlert, triageOf, bulk.column]
  );

  // Text filters are uncontrolled inputs keyed by their URL value: typing is
  // not a query, Enter or leaving the field commits, and a URL change (back
  // button) resets them.
  const textProps = (key: 'host' | 'rule' | 'assignee' | 'q') => ({
    key: `${key}=${params.get(key) ?? ''}`,
    defaultValue: params.get(key) ?? '',
    onBlur: (e: React.FocusEvent<HTMLInputElement>) => setParam(key, e.currentTarget.value.trim()),
    onKeyDown: (e: React.KeyboardEvent<HTMLInputElement>) =>
      e.key === 'Enter' && setParam(key, e.currentTarget.value.trim()),
  });
  const filtered = FILTER_KEYS.some((k) => params.get(k));

  let body: React.ReactNode;
  if (error && alerts.length === 0) {
    body = <ErrorView title="Could not load alerts" error={error} onRetry={first.retry} />;
  } else if (first.loading) {
    body = <Loading what="alerts" />;
  } else if (alerts.length === 0) {
    body = (
      <Empty message={filtered ? 'No alert matches these filters' : 'No alerts in this time range'}>
        {filtered ? 'Widen the filters or the time range.' : 'Trips appear here once agents report them.'}
      </Empty>
    );
  } else {
    body = (
      <div data-testid={testIds.alerts.table}>
        {bulk.toolbar}
        <InteractiveTable columns={columns} data={alerts} getRowId={(a) => a.alert_id} />
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
    <PluginPage actions={<PageTimeRangePicker {...time} />}>
      <Stack direction="column" gap={2}>
        <InlineFieldRow>
          <InlineField label="Host" labelWidth={8}>
            <Input aria-label="host filter" width={18} placeholder="any" {...textProps('host')} />
          </InlineField>
          <InlineField label="Type" labelWidth={8}>
            <Select
              aria-label="type filter"
              width={16}
              options={[...anyOption('Any type'), ...TYPES.map((t) => ({ label: t, value: t }))]}
              value={params.get('type') ?? ''}
              onChange={(v) => setParam('type', v.value)}
            />
          </InlineField>
          <InlineField label="Severity" labelWidth={10}>
            <Select
              aria-label="severity filter"
              width={18}
              options={[...anyOption('Any severity'), ...SEVERITIES.map((t) => ({ label: t, value: t }))]}
              value={params.get('severity') ?? ''}
              onChange={(v) => setParam('severity', v.value)}
            />
          </InlineField>
          <InlineField label="Rule" labelWidth={8}>
            <Input aria-label="rule filter" width={18} placeholder="any" {...textProps('rule')} />
          </InlineField>
          <InlineField label="State" labelWidth={8}>
            <Select
              aria-label="state filter"
              width={18}
              options={[...anyOption('Any state'), ...TRIAGE_STATES.map((t) => ({ label: t, value: t }))]}
              value={params.get('state') ?? ''}
              onChange={(v) => setParam('state', v.value)}
            />
          </InlineField>
          <InlineField label="Assignee" labelWidth={10}>
            <Input aria-label="assignee filter" width={16} placeholder="anyone" {...textProps('assignee')} />
          </InlineField>
          <InlineField label="Search" labelWidth={10}>
            <Input aria-label="text search" width={24} placeholder="summary, path, command…" {...textProps('q')} />
          </InlineField>
        </InlineFieldRow>
        {body}
      </Stack>
      {selected && (
        <AlertDrawer
          id={selected}
          host={selectedHost}
          onClose={() => openAlert(undefined)}
          onTriage={(t) => setTriaged((prev) => ({ ...prev, [`${t.host_name}/${t.alert_id}`]: t }))}
        />
      )}
    </PluginPage>
  );
}

/** Every field of one alert, its triage and its raw canonical event. */
export function AlertDrawer({
  id,
  host,
  onClose,
  onTriage,
}: {
  id: string;
  host?: string;
  onClose: () => void;
  onTriage?: (t: AlertTriage) => void;
}) {
  const s = useStyles2(getStyles);
  const { value: alert, error } = useAsyncRetry(() => api.getAlert(id, host), [id, host]);

  return (
    <Drawer title="Alert" subtitle={id} onClose={onClose} size="md">
      <div data-testid={testIds.alerts.drawer}>
        {error ? (
          <ErrorView title="Could not load the alert" error={error} />
        ) : !alert ? (
          <Loading what="the alert" />
        ) : (
          <>
            <TriagePanel id={id} host={alert.host_name} onChange={onTriage} />
            <h4>Event</h4>
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
