import React, { useMemo, useState } from 'react';
import { useAsyncRetry } from 'react-use';
import { useSearchParams } from 'react-router-dom';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import {
  Alert as AlertBox,
  Button,
  Column,
  InlineField,
  InteractiveTable,
  Select,
  Stack,
  useStyles2,
} from '@grafana/ui';

import { api } from '../api/client';
import type { AuditEntry, ChainStatus } from '../api/types';
import { Empty, ErrorView, Loading } from '../components/States';
import { fmtTime } from '../components/time';
import { apiRange, PageTimeRangePicker, useUrlTimeRange } from '../components/TimeRange';
import { testIds } from '../components/testIds';
import { withParams } from '../components/urlParams';

/**
 * Audit: a host's chain recomputed from the stored entries, and the entries
 * of the chosen time range. The host and the range live in the URL.
 */
export function Audit() {
  const s = useStyles2(getStyles);
  const [params, setParams] = useSearchParams();
  const host = params.get('host') ?? '';
  const time = useUrlTimeRange();
  const { from, to } = apiRange(time.range);
  const hostList = useAsyncRetry(() => api.hosts(), []);
  const hosts = hostList.value?.hosts;
  const hostsError = hostList.error;
  const key = `${host}\u0000${from}\u0000${to}`;
  const chain = useAsyncRetry(
    () =>
      host ? Promise.all([api.verify(host), api.audit(host, undefined, 100, from, to)]) : Promise.resolve(undefined),
    [key]
  );
  const [status, firstPage] = chain.value ?? [];
  const error = chain.error;
  // Older pages, kept with the request they extend.
  const [older, setOlder] = useState<{ key: string; entries: AuditEntry[]; next?: string }>();
  const extra = older?.key === key ? older : undefined;
  const entries = firstPage ? [...firstPage.entries, ...(extra?.entries ?? [])] : undefined;
  const next = extra ? extra.next : firstPage?.next_cursor;

  const more = () => {
    if (!next) {
      return;
    }
    const have = extra?.entries ?? [];
    api
      .audit(host, next, 100, from, to)
      .then((page) => setOlder({ key, entries: [...have, ...page.entries], next: page.next_cursor }));
  };
  const columns = useMemo<Array<Column<AuditEntry>>>(
    () => [
      { id: 'seq', header: 'Seq' },
      { id: 'event_time', header: 'Event time', cell: ({ row }) => fmtTime(row.original.event_time) },
      { id: 'event', header: 'Event', cell: ({ row }) => String(row.original.payload['event.name'] ?? '') },
      {
        id: 'prev_hash',
        header: 'Prev hash',
        cell: ({ row }) => (
          <span className={s.hash} title={row.original.prev_hash}>
            {row.original.prev_hash.slice(0, 16)}…
          </span>
        ),
      },
      {
        id: 'hash',
        header: 'Hash',
        cell: ({ row }) => (
          <span className={s.hash} title={row.original.hash}>
            {row.original.hash.slice(0, 16)}…
          </span>
        ),
      },
    ],
    [s]
  );

  let body: React.ReactNode;
  if (hostsError) {
    body = <ErrorView title="Could not load hosts" error={hostsError} onRetry={hostList.retry} />;
  } else if (!hosts) {
    body = <Loading what="hosts" />;
  } else if (hosts.length === 0) {
    body = <Empty message="No host has reported yet">Audit chains appear once agents send events.</Empty>;
  } else if (!host) {
    body = <Empty message="Choose a host to check its audit chain" />;
  } else if (error) {
    body = <ErrorView title={`Could not check ${host}`} error={error} onRetry={chain.retry} />;
  } else if (!status || !entries) {
    body = <Loading what={`the audit chain of ${host}`} />;
  } else {
    body = (
      <>
        <ChainSummary status={status} />
        {entries.length === 0 ? (
          <Empty message={`No audit entries of ${host} in this time range`} />
        ) : (
          <div data-testid={testIds.audit.entries}>
            <InteractiveTable columns={columns} data={entries} getRowId={(e) => String(e.seq)} />
          </div>
        )}
        {next && (
          <Button size="sm" variant="secondary" onClick={more}>
            Older entries
          </Button>
        )}
      </>
    );
  }

  return (
    <PluginPage actions={<PageTimeRangePicker {...time} />}>
      <Stack direction="column" gap={2}>
        <InlineField label="Host" labelWidth={8}>
          <Select
            aria-label="audit host"
            width={30}
            isLoading={!hosts && !hostsError}
            options={(hosts ?? []).map((h) => ({ label: h.host_name, value: h.host_name }))}
            value={host || null}
            onChange={(v) => setParams((prev) => withParams(prev, { host: v?.value }))}
          />
        </InlineField>
        {body}
      </Stack>
    </PluginPage>
  );
}

function ChainSummary({ status }: { status: ChainStatus }) {
  const breaks = [...status.breaks, ...status.recorded_breaks];
  return (
    <div data-testid={testIds.audit.status}>
      <AlertBox severity={status.intact ? 'success' : 'error'} title={status.intact ? 'Chain intact' : 'Chain broken'}>
        {status.entries} entries stored (seq {status.first_seq}–{status.head_seq ?? '?'}); verified up to seq{' '}
        {status.verified_up_to_seq}.
        {breaks.length > 0 && (
          <ul>
            {breaks.map((b, i) => (
              <li key={i}>
                <strong>{b.kind}</strong>
                {b.seq ? ` at seq ${b.seq}` : b.got_seq ? ` at seq ${b.got_seq}` : ''}
                {b.detail ? `: ${b.detail}` : ''}
                {b.detected_at ? ` (recorded by the collector ${fmtTime(b.detected_at)})` : ''}
              </li>
            ))}
          </ul>
        )}
      </AlertBox>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  hash: css({ fontFamily: theme.typography.fontFamilyMonospace }),
});

export default Audit;
