import React, { useCallback, useMemo, useState } from 'react';
import { useAsyncRetry } from 'react-use';
import { Link } from 'react-router-dom';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { config, PluginPage } from '@grafana/runtime';
import { Column, ConfirmButton, Icon, InteractiveTable, Stack, Tooltip, useStyles2 } from '@grafana/ui';

import { api } from '../api/client';
import type { Host, HostList, RefusedHost } from '../api/types';
import { AGENT_STATUS } from '../api/contract.gen';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { ago, daysUntil, fmtTime } from '../components/time';
import { testIds } from '../components/testIds';
import { prefixRoute } from '../utils/utils.routing';
import { ROUTES } from '../constants';

const CERT_WARN_DAYS = 30;

/** Hosts: every agent with its derived status, versions, watcher modes and certificate. */
export function Hosts() {
  const s = useStyles2(getStyles);
  const { value: data, error, retry } = useAsyncRetry<HostList>(() => api.hosts(), []);
  // Retiring a decommissioned host stops its offline alerts; the backend
  // checks the Admin role too.
  const isAdmin = config.bootData?.user?.orgRole === 'Admin';
  const [retireError, setRetireError] = useState<unknown>();
  const retire = useCallback(
    (name: string) =>
      api.retireHost(name).then(
        () => retry(),
        (e: unknown) => setRetireError(e)
      ),
    [retry]
  );
  const columns = useMemo<Array<Column<Host>>>(
    () => [
      { id: 'host_name', header: 'Host' },
      {
        id: 'status',
        header: 'Status',
        cell: ({ row: { original: h } }) => (
          <>
            <StatusBadge value={h.status} />
            {h.status === AGENT_STATUS.Degraded && h.status_reasons && (
              <Tooltip content={h.status_reasons.split('; ').join('\n')}>
                <span aria-label={`Degraded: ${h.status_reasons}`}>
                  <Icon name="info-circle" />
                </span>
              </Tooltip>
            )}
          </>
        ),
      },
      {
        id: 'last_seen',
        header: 'Last seen',
        cell: ({ row }) => <span title={fmtTime(row.original.last_seen)}>{ago(row.original.last_seen)}</span>,
      },
      { id: 'agent_version', header: 'Agent', cell: ({ row }) => row.original.agent_version ?? '—' },
      {
        id: 'platform',
        header: 'Platform',
        cell: ({ row }) => [row.original.platform, row.original.arch].filter(Boolean).join('/') || '—',
      },
      {
        id: 'watchers',
        header: 'Watchers',
        cell: ({ row: { original: h } }) => (
          <>
            {h.watchers ?? '—'}
            {h.unserved_rules && (
              <Tooltip content={`Rules this agent cannot serve: ${h.unserved_rules}`}>
                <Icon name="exclamation-triangle" className={s.warn} />
              </Tooltip>
            )}
          </>
        ),
      },
      {
        id: 'cert_not_after',
        header: 'Certificate expires',
        cell: ({ row: { original: h } }) => {
          const certDays = h.cert_not_after ? daysUntil(h.cert_not_after) : undefined;
          return (
            <span className={certDays !== undefined && certDays < CERT_WARN_DAYS ? s.warnText : undefined}>
              {h.cert_not_after ? fmtTime(h.cert_not_after).slice(0, 10) : '—'}
            </span>
          );
        },
      },
      { id: 'last_alert_at', header: 'Last alert', cell: ({ row }) => ago(row.original.last_alert_at) },
      { id: 'alerts_24h', header: 'Alerts 24 h' },
      {
        id: 'links',
        cell: ({ row: { original: h } }) => (
          <>
            <Link className={s.link} to={`${prefixRoute(ROUTES.Alerts)}?host=${encodeURIComponent(h.host_name)}`}>
              Alerts
            </Link>{' '}
            <Link className={s.link} to={`${prefixRoute(ROUTES.Audit)}?host=${encodeURIComponent(h.host_name)}`}>
              Audit
            </Link>{' '}
            <Link className={s.link} to={`${prefixRoute(ROUTES.Rules)}?host=${encodeURIComponent(h.host_name)}`}>
              Rules
            </Link>
          </>
        ),
      },
      ...(isAdmin
        ? [
            {
              id: 'actions',
              header: '',
              cell: ({ row: { original: h } }: { row: { original: Host } }) =>
                h.status === AGENT_STATUS.Retired ? null : (
                  <ConfirmButton
                    size="sm"
                    confirmText="Yes, retire"
                    confirmVariant="destructive"
                    onConfirm={() => retire(h.host_name)}
                  >
                    Retire
                  </ConfirmButton>
                ),
            },
          ]
        : []),
    ],
    [s, isAdmin, retire]
  );

  const refusedColumns = useMemo<Array<Column<RefusedHost>>>(
    () => [
      { id: 'cert_name', header: 'Certificate' },
      { id: 'reason', header: 'Refused as' },
      { id: 'claimed_name', header: 'Claimed host', cell: ({ row }) => row.original.claimed_name ?? '—' },
      { id: 'detail', header: 'Why', cell: ({ row }) => <span className={s.detail}>{row.original.detail}</span> },
      { id: 'ip_address', header: 'Address', cell: ({ row }) => row.original.ip_address ?? '—' },
      {
        id: 'last_seen',
        header: 'Last refused',
        cell: ({ row }) => <span title={fmtTime(row.original.last_seen)}>{ago(row.original.last_seen)}</span>,
      },
      { id: 'refusals', header: 'Refusals' },
    ],
    [s]
  );
  const refused = data?.refused_hosts ?? [];

  let body: React.ReactNode;
  if (error) {
    body = <ErrorView title="Could not load hosts" error={error} onRetry={retry} />;
  } else if (!data) {
    body = <Loading what="hosts" />;
  } else if (data.hosts.length === 0) {
    body = (
      <Empty message="No host has reported yet">
        Hosts appear once the first heartbeat of their agent reaches the collector.
      </Empty>
    );
  } else {
    body = (
      <div data-testid={testIds.hosts.table}>
        <InteractiveTable columns={columns} data={data.hosts} getRowId={(h) => h.host_name} />
      </div>
    );
  }

  return (
    <PluginPage>
      <Stack direction="column" gap={1}>
        {data && (
          <div className={s.note}>A host is OFFLINE after {data.offline_after_seconds} s without a heartbeat.</div>
        )}
        {retireError !== undefined && <ErrorView title="Could not retire the host" error={retireError} />}
        {body}
        {refused.length > 0 && (
          <div data-testid={testIds.hosts.refused}>
            <h3>Refused identities</h3>
            <div className={s.note}>
              The collector refused these certificates, so nothing they sent was stored: a certificate issued for
              another name than the agent&apos;s host name, or one revoked or expired.
            </div>
            <InteractiveTable columns={refusedColumns} data={refused} getRowId={(r) => `${r.cert_name}/${r.reason}`} />
          </div>
        )}
      </Stack>
    </PluginPage>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  warn: css({ color: theme.colors.warning.text, marginLeft: theme.spacing(0.5) }),
  warnText: css({ color: theme.colors.warning.text }),
  note: css({ color: theme.colors.text.secondary }),
  link: css({ color: theme.colors.text.link, marginRight: theme.spacing(1) }),
  detail: css({ wordBreak: 'break-word' }),
});

export default Hosts;
