import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { render, screen, within } from '@testing-library/react';

import { api, ApiError } from '../api/client';
import { BREAK_KIND } from '../api/contract.gen';
import { host, intactChain, pending } from '../test/fixtures';
import { Audit } from './Audit';

jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  api: { hosts: jest.fn(), verify: jest.fn(), audit: jest.fn() },
}));
const hosts = api.hosts as jest.Mock;
const verify = api.verify as jest.Mock;
const audit = api.audit as jest.Mock;

const entry = (seq: number) => ({
  seq,
  alert_id: 'a',
  event_time: '2026-11-26T12:00:00Z',
  prev_hash: '0'.repeat(64),
  hash: 'ab'.repeat(32),
  payload: { 'event.name': 'tripwire.file.access' },
  received_at: '2026-11-26T12:00:01Z',
});

const renderAt = (url: string) =>
  render(
    <MemoryRouter initialEntries={[url]}>
      <Audit />
    </MemoryRouter>
  );

describe('Audit page', () => {
  beforeEach(() => {
    hosts.mockReset().mockResolvedValue({ hosts: [host('web-01')], offline_after_seconds: 45 });
    verify.mockReset();
    audit.mockReset();
  });

  it('asks for a host when none is chosen', async () => {
    renderAt('/audit');
    expect(await screen.findByText('Choose a host to check its audit chain')).toBeInTheDocument();
  });

  it('shows loading while the chain is verified', async () => {
    verify.mockReturnValue(pending());
    audit.mockReturnValue(pending());
    renderAt('/audit?host=web-01');
    expect(await screen.findByText(/Loading the audit chain of web-01/)).toBeInTheDocument();
  });

  it('shows an intact chain and its entries', async () => {
    verify.mockResolvedValue(intactChain('web-01'));
    audit.mockResolvedValue({ host: 'web-01', entries: [entry(3), entry(2), entry(1)] });
    renderAt('/audit?host=web-01');
    const status = await screen.findByTestId('data-testid audit-status');
    expect(within(status).getByText('Chain intact')).toBeInTheDocument();
    expect(within(status).getByText(/verified up to seq 3/)).toBeInTheDocument();
    expect(within(screen.getByTestId('data-testid audit-entries')).getAllByRole('row')).toHaveLength(4);
    expect(verify).toHaveBeenCalledWith('web-01');
    // The entries of the time range in the URL (Grafana's default: 24 h).
    const [, cursor, limit, from, to] = audit.mock.calls[0];
    expect([cursor, limit]).toEqual([undefined, 100]);
    // "now-24h" and "now" are each resolved at their own instant.
    expect(Math.abs(Number(to) - Number(from) - 86400e3)).toBeLessThan(1000);
  });

  it('shows where a broken chain breaks', async () => {
    verify.mockResolvedValue({
      ...intactChain('web-01'),
      intact: false,
      verified_up_to_seq: 1,
      breaks: [{ kind: BREAK_KIND.Mismatch, seq: 2, detail: 'stored hash does not match the recomputed hash' }],
    });
    audit.mockResolvedValue({ host: 'web-01', entries: [] });
    renderAt('/audit?host=web-01');
    expect(await screen.findByText('Chain broken')).toBeInTheDocument();
    expect(screen.getByText(BREAK_KIND.Mismatch)).toBeInTheDocument();
    expect(screen.getByText(/at seq 2/)).toBeInTheDocument();
    expect(screen.getByText('No audit entries of web-01 in this time range')).toBeInTheDocument();
  });

  it('shows errors', async () => {
    verify.mockRejectedValue(new ApiError('not found', 404));
    audit.mockRejectedValue(new ApiError('not found', 404));
    renderAt('/audit?host=gone');
    expect(await screen.findByText('Could not check gone')).toBeInTheDocument();
  });

  it('says when there are no hosts', async () => {
    hosts.mockResolvedValue({ hosts: [], offline_after_seconds: 45 });
    renderAt('/audit');
    expect(await screen.findByText('No host has reported yet')).toBeInTheDocument();
  });
});
