import React from 'react';
import { Link } from 'react-router-dom';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import { Icon, Stack, Tooltip, useStyles2 } from '@grafana/ui';

import { api } from '../api/client';
import type { HostList } from '../api/types';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { ago, daysUntil, fmtTime } from '../components/time';
import { useAsync } from '../components/useAsync';
import { testIds } from '../components/testIds';
import { prefixRoute } from '../utils/utils.routing';
import { ROUTES } from '../constants';

const CERT_WARN_DAYS = 30;

/** Hosts: every agent with its derived status, versions, watcher modes and certificate. */
export function Hosts() {
  const s = useStyles2(getStyles);
  const { data, error, retry } = useAsync<HostList>(() => api.hosts(), 'hosts');

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
      <table className={s.table} data-testid={testIds.hosts.table}>
        <thead>
          <tr>
            <th>Host</th>
            <th>Status</th>
            <th>Last seen</th>
            <th>Agent</th>
            <th>Platform</th>
            <th>Watchers</th>
            <th>Certificate expires</th>
            <th>Last alert</th>
            <th>Alerts 24 h</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data.hosts.map((h) => {
            const certDays = h.cert_not_after ? daysUntil(h.cert_not_after) : undefined;
            return (
              <tr key={h.host_name}>
                <td>{h.host_name}</td>
                <td>
                  <StatusBadge value={h.status} />
                </td>
                <td title={fmtTime(h.last_seen)}>{ago(h.last_seen)}</td>
                <td>{h.agent_version ?? '—'}</td>
                <td>{[h.platform, h.arch].filter(Boolean).join('/') || '—'}</td>
                <td>
                  {h.watchers ?? '—'}
                  {h.unserved_rules && (
                    <Tooltip content={`Rules this agent cannot serve: ${h.unserved_rules}`}>
                      <Icon name="exclamation-triangle" className={s.warn} />
                    </Tooltip>
                  )}
                </td>
                <td className={certDays !== undefined && certDays < CERT_WARN_DAYS ? s.warnText : undefined}>
                  {h.cert_not_after ? fmtTime(h.cert_not_after).slice(0, 10) : '—'}
                </td>
                <td>{ago(h.last_alert_at)}</td>
                <td>{h.alerts_24h}</td>
                <td>
                  <Link className={s.link} to={`${prefixRoute(ROUTES.Alerts)}?host=${encodeURIComponent(h.host_name)}`}>
                    Alerts
                  </Link>{' '}
                  <Link className={s.link} to={`${prefixRoute(ROUTES.Audit)}?host=${encodeURIComponent(h.host_name)}`}>
                    Audit
                  </Link>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    );
  }

  return (
    <PluginPage>
      <Stack direction="column" gap={1}>
        {data && (
          <div className={s.note}>A host is OFFLINE after {data.offline_after_seconds} s without a heartbeat.</div>
        )}
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
  warn: css({ color: theme.colors.warning.text, marginLeft: theme.spacing(0.5) }),
  warnText: css({ color: theme.colors.warning.text }),
  note: css({ color: theme.colors.text.secondary }),
  link: css({ color: theme.colors.text.link, marginRight: theme.spacing(1) }),
});

export default Hosts;
