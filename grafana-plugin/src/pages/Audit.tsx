import React, { useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import { Alert as AlertBox, Button, InlineField, Select, Stack, useStyles2 } from '@grafana/ui';

import { api } from '../api/client';
import type { AuditEntry, ChainStatus } from '../api/types';
import { Empty, ErrorView, Loading } from '../components/States';
import { fmtTime } from '../components/time';
import { useAsync } from '../components/useAsync';
import { testIds } from '../components/testIds';

/** Audit: a host's chain recomputed from the stored entries, and the entries themselves. */
export function Audit() {
  const s = useStyles2(getStyles);
  const [params, setParams] = useSearchParams();
  const host = params.get('host') ?? '';
  const hostList = useAsync(() => api.hosts(), 'hosts');
  const hosts = hostList.data?.hosts;
  const hostsError = hostList.error;
  const chain = useAsync(
    () => (host ? Promise.all([api.verify(host), api.audit(host)]) : Promise.resolve(undefined)),
    host
  );
  const [status, firstPage] = chain.data ?? [];
  const error = chain.error;
  // Older pages, kept with the request they extend.
  const [older, setOlder] = useState<{ key: string; entries: AuditEntry[]; next?: string }>();
  const extra = older?.key === chain.key ? older : undefined;
  const entries = firstPage ? [...firstPage.entries, ...(extra?.entries ?? [])] : undefined;
  const next = extra ? extra.next : firstPage?.next_cursor;

  const more = () => {
    if (!next) {
      return;
    }
    const key = chain.key;
    const have = extra?.entries ?? [];
    api
      .audit(host, next)
      .then((page) => setOlder({ key, entries: [...have, ...page.entries], next: page.next_cursor }));
  };

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
          <Empty message={`No audit entries stored for ${host}`} />
        ) : (
          <table className={s.table} data-testid={testIds.audit.entries}>
            <thead>
              <tr>
                <th>Seq</th>
                <th>Event time</th>
                <th>Event</th>
                <th>Prev hash</th>
                <th>Hash</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.seq}>
                  <td>{e.seq}</td>
                  <td>{fmtTime(e.event_time)}</td>
                  <td>{String(e.payload['event.name'] ?? '')}</td>
                  <td className={s.hash} title={e.prev_hash}>
                    {e.prev_hash.slice(0, 16)}…
                  </td>
                  <td className={s.hash} title={e.hash}>
                    {e.hash.slice(0, 16)}…
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
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
    <PluginPage>
      <Stack direction="column" gap={2}>
        <InlineField label="Host" labelWidth={8}>
          <Select
            aria-label="audit host"
            width={30}
            isLoading={!hosts && !hostsError}
            options={(hosts ?? []).map((h) => ({ label: h.host_name, value: h.host_name }))}
            value={host || null}
            onChange={(v) => setParams(v?.value ? { host: v.value } : {})}
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
  table: css({
    width: '100%',
    borderCollapse: 'collapse',
    'th, td': {
      padding: theme.spacing(0.5, 1),
      textAlign: 'left',
      borderBottom: `1px solid ${theme.colors.border.weak}`,
    },
  }),
  hash: css({ fontFamily: theme.typography.fontFamilyMonospace }),
});

export default Audit;
