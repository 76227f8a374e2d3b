import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { config } from '@grafana/runtime';

import { api, ApiError } from '../api/client';
import { AGENT_STATUS } from '../api/contract.gen';
import { host, pending } from '../test/fixtures';
import { Hosts } from './Hosts';

jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  api: { hosts: jest.fn(), retireHost: jest.fn() },
}));
const hosts = api.hosts as jest.Mock;
const retireHost = api.retireHost as jest.Mock;

describe('Hosts page', () => {
  beforeEach(() => hosts.mockReset());

  it('shows loading until hosts arrive', () => {
    hosts.mockReturnValue(pending());
    render(
      <MemoryRouter>
        <Hosts />
      </MemoryRouter>
    );
    expect(screen.getByText(/Loading hosts/)).toBeInTheDocument();
  });

  it('explains an empty fleet', async () => {
    hosts.mockResolvedValue({ hosts: [], offline_after_seconds: 45 });
    render(
      <MemoryRouter>
        <Hosts />
      </MemoryRouter>
    );
    expect(await screen.findByText(/No host has reported yet/)).toBeInTheDocument();
  });

  it('lists hosts with status, agent and certificate', async () => {
    hosts.mockResolvedValue({
      hosts: [
        host('web-01'),
        host('db-01', {
          status: AGENT_STATUS.Offline,
          cert_not_after: new Date(Date.now() + 5 * 86400e3).toISOString(),
        }),
        host('mac-01', {
          status: AGENT_STATUS.Degraded,
          unserved_rules: 'nc-exec: no eBPF',
          status_reasons: 'unserved: nc-exec: no eBPF; shipping: failing',
        }),
      ],
      offline_after_seconds: 45,
    });
    render(
      <MemoryRouter>
        <Hosts />
      </MemoryRouter>
    );
    const table = await screen.findByTestId('data-testid hosts-table');
    const rows = within(table).getAllByRole('row');
    expect(rows).toHaveLength(4);
    expect(within(rows[2]).getByText(AGENT_STATUS.Offline)).toBeInTheDocument();
    expect(within(rows[3]).getByText(AGENT_STATUS.Degraded)).toBeInTheDocument();
    expect(
      within(rows[3]).getByLabelText('Degraded: unserved: nc-exec: no eBPF; shipping: failing')
    ).toBeInTheDocument();
    expect(within(rows[1]).queryByLabelText(/^Degraded:/)).not.toBeInTheDocument();
    expect(within(rows[1]).getByText('0.1.0')).toBeInTheDocument();
    expect(within(rows[1]).getByText('file=fanotify,process=ebpf')).toBeInTheDocument();
    expect(screen.getByText(/OFFLINE after 45 s/)).toBeInTheDocument();
  });

  it('lists the identities the collector refused, even with no host yet', async () => {
    hosts.mockResolvedValue({
      hosts: [],
      refused_hosts: [
        {
          cert_name: 'web-07',
          reason: 'host_mismatch',
          claimed_name: 'db-02',
          detail: 'permission denied: resource host.name "db-02" is not the client certificate\'s host "web-07"',
          ip_address: '10.0.0.7',
          first_seen: new Date(Date.now() - 3600e3).toISOString(),
          last_seen: new Date(Date.now() - 60e3).toISOString(),
          refusals: 42,
        },
      ],
      offline_after_seconds: 45,
    });
    render(
      <MemoryRouter>
        <Hosts />
      </MemoryRouter>
    );
    expect(await screen.findByText(/No host has reported yet/)).toBeInTheDocument();
    const refused = screen.getByTestId('data-testid hosts-refused');
    const rows = within(refused).getAllByRole('row');
    expect(rows).toHaveLength(2);
    expect(within(rows[1]).getByText('web-07')).toBeInTheDocument();
    expect(within(rows[1]).getByText('host_mismatch')).toBeInTheDocument();
    expect(within(rows[1]).getByText('db-02')).toBeInTheDocument();
    expect(within(rows[1]).getByText(/is not the client certificate's host "web-07"/)).toBeInTheDocument();
    expect(within(rows[1]).getByText('10.0.0.7')).toBeInTheDocument();
    expect(within(rows[1]).getByText('42')).toBeInTheDocument();
  });

  it('shows no refused section when nothing was refused', async () => {
    hosts.mockResolvedValue({ hosts: [host('web-01')], refused_hosts: [], offline_after_seconds: 45 });
    render(
      <MemoryRouter>
        <Hosts />
      </MemoryRouter>
    );
    await screen.findByTestId('data-testid hosts-table');
    expect(screen.queryByTestId('data-testid hosts-refused')).not.toBeInTheDocument();
  });

  it('shows the server error with a retry', async () => {
    hosts.mockRejectedValueOnce(new ApiError('PostgreSQL: connection refused', 500));
    render(
      <MemoryRouter>
        <Hosts />
      </MemoryRouter>
    );
    expect(await screen.findByText('PostgreSQL: connection refused')).toBeInTheDocument();
    hosts.mockResolvedValue({ hosts: [host('web-01')], offline_after_seconds: 45 });
    screen.getByRole('button', { name: /retry/i }).click();
    expect(await screen.findByTestId('data-testid hosts-table')).toBeInTheDocument();
  });

  it('lets an Admin retire a host, and no one else', async () => {
    const list = {
      hosts: [host('web-01'), host('old-01', { status: AGENT_STATUS.Retired })],
      offline_after_seconds: 45,
    };
    hosts.mockResolvedValue(list);
    retireHost.mockResolvedValue({ host_name: 'web-01', status: AGENT_STATUS.Retired });
    const saved = config.bootData.user.orgRole;
    try {
      config.bootData.user.orgRole = 'Viewer' as typeof saved;
      const { unmount } = render(
        <MemoryRouter>
          <Hosts />
        </MemoryRouter>
      );
      await screen.findByTestId('data-testid hosts-table');
      expect(screen.queryByText('Retire')).not.toBeInTheDocument();
      unmount();

      config.bootData.user.orgRole = 'Admin' as typeof saved;
      render(
        <MemoryRouter>
          <Hosts />
        </MemoryRouter>
      );
      const table = await screen.findByTestId('data-testid hosts-table');
      const rows = within(table).getAllByRole('row');
      expect(within(rows[2]).queryByText('Retire')).not.toBeInTheDocument(); // already retired
      fireEvent.click(within(rows[1]).getByText('Retire'));
      fireEvent.click(await within(rows[1]).findByText('Yes, retire'));
      await waitFor(() => expect(retireHost).toHaveBeenCalledWith('web-01'));
      await waitFor(() => expect(hosts).toHaveBeenCalledTimes(3)); // reloaded after retiring
    } finally {
      config.bootData.user.orgRole = saved;
    }
  });
});
