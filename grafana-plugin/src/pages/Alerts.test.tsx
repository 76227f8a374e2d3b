import React, { useEffect } from 'react';
import { MemoryRouter, useLocation } from 'react-router-dom';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';

import { api, ApiError } from '../api/client';
import { alert, pending } from '../test/fixtures';
import { Alerts, filterFromParams } from './Alerts';

jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  api: { listAlerts: jest.fn(), getAlert: jest.fn() },
}));
const listAlerts = api.listAlerts as jest.Mock;
const getAlert = api.getAlert as jest.Mock;

const probe = { search: '' };
function LocationProbe() {
  const loc = useLocation();
  useEffect(() => {
    probe.search = loc.search;
  });
  return null;
}

function renderAt(url: string) {
  return render(
    <MemoryRouter initialEntries={[url]}>
      <Alerts height={400} />
      <LocationProbe />
    </MemoryRouter>
  );
}

describe('Alerts page', () => {
  beforeEach(() => {
    listAlerts.mockReset();
    getAlert.mockReset();
  });

  it('shows loading first', () => {
    listAlerts.mockReturnValue(pending());
    renderAt('/alerts');
    expect(screen.getByText(/Loading alerts/)).toBeInTheDocument();
  });

  it('says when nothing matches the filters', async () => {
    listAlerts.mockResolvedValue({ alerts: [] });
    renderAt('/alerts?severity=CRITICAL');
    expect(await screen.findByText('No alert matches these filters')).toBeInTheDocument();
  });

  it('says when there are no alerts at all', async () => {
    listAlerts.mockResolvedValue({ alerts: [] });
    renderAt('/alerts');
    expect(await screen.findByText('No alerts yet')).toBeInTheDocument();
  });

  it('shows the server message on error', async () => {
    listAlerts.mockRejectedValue(new ApiError('type: unknown value "x"', 400));
    renderAt('/alerts?type=x');
    expect(await screen.findByText('type: unknown value "x"')).toBeInTheDocument();
  });

  it('reads its filters from the URL', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    renderAt('/alerts?host=web-01&severity=CRITICAL&q=shadow&rule=r1&type=file');
    await screen.findByTestId('data-testid alerts-table');
    expect(listAlerts).toHaveBeenCalledWith(
      { host: 'web-01', severity: 'CRITICAL', q: 'shadow', rule: 'r1', type: 'file' },
      undefined,
      200
    );
    expect(screen.getByLabelText('host filter')).toHaveValue('web-01');
  });

  it('writes filter changes to the URL and queries again', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    renderAt('/alerts?severity=WARN');
    await screen.findByTestId('data-testid alerts-table');
    const hostInput = screen.getByLabelText('host filter');
    fireEvent.change(hostInput, { target: { value: 'db-01' } });
    fireEvent.keyDown(hostInput, { key: 'Enter' });
    await waitFor(() => expect(new URLSearchParams(probe.search).get('host')).toBe('db-01'));
    expect(new URLSearchParams(probe.search).get('severity')).toBe('WARN');
    await waitFor(() =>
      expect(listAlerts).toHaveBeenLastCalledWith({ host: 'db-01', severity: 'WARN' }, undefined, 200)
    );
    // Clearing a filter removes it from the URL. (The input is re-created
    // for the new URL value, so look it up again.)
    const again = screen.getByLabelText('host filter');
    expect(again).toHaveValue('db-01');
    fireEvent.change(again, { target: { value: '' } });
    fireEvent.blur(again);
    await waitFor(() => expect(new URLSearchParams(probe.search).has('host')).toBe(false));
  });

  it('renders only the visible rows of a long list and pages with the cursor', async () => {
    const first = Array.from({ length: 200 }, (_, i) => alert(i + 1));
    listAlerts.mockResolvedValueOnce({ alerts: first, next_cursor: 'CUR1' });
    listAlerts.mockResolvedValueOnce({ alerts: [alert(1001)] });
    renderAt('/alerts');
    await screen.findByTestId('data-testid alerts-table');
    const rows = screen.getAllByTestId('data-testid alerts-row');
    // 400 px of 36 px rows plus overscan: far fewer than 200.
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(30);
    await act(async () => screen.getByTestId('data-testid alerts-load-more').click());
    await waitFor(() => expect(listAlerts).toHaveBeenLastCalledWith({}, 'CUR1', 200));
    expect(await screen.findByText('201 alerts shown')).toBeInTheDocument();
  });

  it('opens the detail drawer from a row and puts it in the URL', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(7)] });
    getAlert.mockResolvedValue({ ...alert(7), event_detail: { 'file.path': '/etc/shadow', 'process.pid': 4242 } });
    renderAt('/alerts');
    await screen.findByTestId('data-testid alerts-table');
    fireEvent.click(screen.getAllByTestId('data-testid alerts-row')[0]);
    await waitFor(() => expect(new URLSearchParams(probe.search).get('alert')).toBe(alert(7).alert_id));
    expect(await screen.findByText('process.pid')).toBeInTheDocument();
    expect(screen.getByText(/"file.path": "\/etc\/shadow"/)).toBeInTheDocument();
    expect(getAlert).toHaveBeenCalledWith(alert(7).alert_id);
  });

  it('opens the drawer from a shared URL', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(7)] });
    getAlert.mockRejectedValue(new ApiError('not found', 404));
    renderAt(`/alerts?alert=${alert(9).alert_id}`);
    expect(await screen.findByText('Could not load the alert')).toBeInTheDocument();
  });
});

describe('filterFromParams', () => {
  it('keeps only known, non-empty filters', () => {
    expect(filterFromParams(new URLSearchParams('host=a&type=&x=1&alert=z&from=2026-01-01T00:00:00Z'))).toEqual({
      host: 'a',
      from: '2026-01-01T00:00:00Z',
    });
  });
});
