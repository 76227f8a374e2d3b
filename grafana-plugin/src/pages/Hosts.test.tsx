import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { render, screen, within } from '@testing-library/react';

import { api, ApiError } from '../api/client';
import { AGENT_STATUS } from '../api/contract.gen';
import { host, pending } from '../test/fixtures';
import { Hosts } from './Hosts';

jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  api: { hosts: jest.fn() },
}));
const hosts = api.hosts as jest.Mock;

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
});
