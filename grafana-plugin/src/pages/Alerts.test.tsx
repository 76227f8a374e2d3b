import React, { useEffect } from 'react';
import { MemoryRouter, useLocation } from 'react-router-dom';
import { act, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { setTimeZoneResolver } from '@grafana/data';

import { api, ApiError } from '../api/client';
import { triageApi } from '../api/triage';
import { alert, pending } from '../test/fixtures';
import { Alerts, filterFromParams } from './Alerts';

jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  api: { listAlerts: jest.fn(), getAlert: jest.fn() },
}));
jest.mock('../api/triage', () => ({
  ...jest.requireActual('../api/triage'),
  triageApi: { get: jest.fn(), change: jest.fn(), changeMany: jest.fn() },
}));
const listAlerts = api.listAlerts as jest.Mock;
const getAlert = api.getAlert as jest.Mock;
const getTriage = triageApi.get as jest.Mock;
const changeTriage = triageApi.change as jest.Mock;
const changeMany = triageApi.changeMany as jest.Mock;

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
      <Alerts />
      <LocationProbe />
    </MemoryRouter>
  );
}

describe('Alerts page', () => {
  beforeEach(() => {
    listAlerts.mockReset();
    getAlert.mockReset();
    getTriage.mockReset().mockReturnValue(pending());
    changeTriage.mockReset();
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

  it('says when there are no alerts in the time range', async () => {
    listAlerts.mockResolvedValue({ alerts: [] });
    renderAt('/alerts');
    expect(await screen.findByText('No alerts in this time range')).toBeInTheDocument();
  });

  it("reads the last 24 hours by default, as Grafana's time range", async () => {
    listAlerts.mockResolvedValue({ alerts: [] });
    const before = Date.now();
    renderAt('/alerts');
    await waitFor(() => expect(listAlerts).toHaveBeenCalled());
    const { from, to } = listAlerts.mock.calls[0][0];
    expect(Number(to)).toBeGreaterThanOrEqual(before);
    // "now-24h" and "now" are each resolved at their own instant.
    expect(Math.abs(Number(to) - Number(from) - 86400e3)).toBeLessThan(1000);
  });

  it("takes the time range from the URL in Grafana's forms", async () => {
    listAlerts.mockResolvedValue({ alerts: [] });
    renderAt('/alerts?from=1764000000000&to=1764003600000&severity=CRITICAL');
    await waitFor(() =>
      expect(listAlerts).toHaveBeenCalledWith(
        { severity: 'CRITICAL', from: '1764000000000', to: '1764003600000' },
        undefined,
        200
      )
    );
    listAlerts.mockClear();
    renderAt('/alerts?from=now-1h&to=now');
    await waitFor(() => expect(listAlerts).toHaveBeenCalled());
    const { from, to } = listAlerts.mock.calls[0][0];
    expect(Number(to) - Number(from)).toBe(3600e3);
  });

  it('shows the server message on error', async () => {
    listAlerts.mockRejectedValue(new ApiError('type: unknown value "x"', 400));
    renderAt('/alerts?type=x');
    expect(await screen.findByText('type: unknown value "x"')).toBeInTheDocument();
  });

  it('reads its filters from the URL', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    renderAt('/alerts?host=web-01&severity=CRITICAL&q=shadow&rule=r1&type=file&from=1&to=2');
    await screen.findByTestId('data-testid alerts-table');
    expect(listAlerts).toHaveBeenCalledWith(
      { host: 'web-01', severity: 'CRITICAL', q: 'shadow', rule: 'r1', type: 'file', from: '1', to: '2' },
      undefined,
      200
    );
    expect(screen.getByLabelText('host filter')).toHaveValue('web-01');
  });

  it('writes filter changes to the URL and queries again', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    renderAt('/alerts?severity=WARN&from=1&to=2');
    await screen.findByTestId('data-testid alerts-table');
    const hostInput = screen.getByLabelText('host filter');
    fireEvent.change(hostInput, { target: { value: 'db-01' } });
    fireEvent.keyDown(hostInput, { key: 'Enter' });
    await waitFor(() => expect(new URLSearchParams(probe.search).get('host')).toBe('db-01'));
    expect(new URLSearchParams(probe.search).get('severity')).toBe('WARN');
    await waitFor(() =>
      expect(listAlerts).toHaveBeenLastCalledWith(
        { host: 'db-01', severity: 'WARN', from: '1', to: '2' },
        undefined,
        200
      )
    );
    // Clearing a filter removes it from the URL. (The input is re-created
    // for the new URL value, so look it up again.)
    const again = screen.getByLabelText('host filter');
    expect(again).toHaveValue('db-01');
    fireEvent.change(again, { target: { value: '' } });
    fireEvent.blur(again);
    await waitFor(() => expect(new URLSearchParams(probe.search).has('host')).toBe(false));
  });

  it("shows rows in Grafana's table, times in the user's zone, and pages with the cursor", async () => {
    setTimeZoneResolver(() => 'Asia/Tokyo');
    const first = Array.from({ length: 20 }, (_, i) => alert(i + 1));
    listAlerts.mockResolvedValueOnce({ alerts: first, next_cursor: 'CUR1' });
    listAlerts.mockResolvedValueOnce({ alerts: [alert(1001)] });
    renderAt('/alerts?from=1&to=2');
    await screen.findByTestId('data-testid alerts-table');
    expect(screen.getAllByTestId('data-testid alerts-row')).toHaveLength(20);
    // alert(1) happened at 12:00:01 UTC: 21:00:01 in Tokyo.
    expect(screen.getByText('2026-11-26 21:00:01.000')).toBeInTheDocument();
    setTimeZoneResolver(() => 'browser');
    await act(async () => screen.getByTestId('data-testid alerts-load-more').click());
    await waitFor(() => expect(listAlerts).toHaveBeenLastCalledWith({ from: '1', to: '2' }, 'CUR1', 200));
    expect(await screen.findByText('21 alerts shown')).toBeInTheDocument();
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
    expect(getAlert).toHaveBeenCalledWith(alert(7).alert_id, alert(7).host_name);
  });

  it('opens the drawer from a shared URL', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(7)] });
    getAlert.mockRejectedValue(new ApiError('not found', 404));
    renderAt(`/alerts?alert=${alert(9).alert_id}`);
    expect(await screen.findByText('Could not load the alert')).toBeInTheDocument();
  });
});

describe('Alerts page triage', () => {
  beforeEach(() => {
    listAlerts.mockReset();
    getAlert.mockReset();
    getTriage.mockReset();
    changeTriage.mockReset();
  });

  it('filters by state and assignee from the URL, and writes a state change to it', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    renderAt('/alerts?state=OPEN&assignee=carol&from=1&to=2');
    await screen.findByTestId('data-testid alerts-table');
    expect(listAlerts).toHaveBeenCalledWith({ state: 'OPEN', assignee: 'carol', from: '1', to: '2' }, undefined, 200);
    expect(screen.getByLabelText('assignee filter')).toHaveValue('carol');
    const assignee = screen.getByLabelText('assignee filter');
    fireEvent.change(assignee, { target: { value: '' } });
    fireEvent.blur(assignee);
    await waitFor(() =>
      expect(listAlerts).toHaveBeenLastCalledWith({ state: 'OPEN', from: '1', to: '2' }, undefined, 200)
    );
    expect(new URLSearchParams(probe.search).has('assignee')).toBe(false);
  });

  it("shows each alert's state and the change made in the drawer", async () => {
    const config = jest.requireActual('@grafana/runtime').config;
    const saved = config.bootData.user.orgRole;
    config.bootData.user.orgRole = 'Editor';
    try {
      listAlerts.mockResolvedValue({
        alerts: [
          alert(2, { triage: { state: 'ACKNOWLEDGED', assignee: 'carol' } }),
          alert(1, { triage: { state: 'OPEN' } }),
        ],
      });
      getAlert.mockResolvedValue({ ...alert(1), event_detail: {} });
      const t = { alert_id: alert(1).alert_id, host_name: 'web-01', event_time: alert(1).event_time, history: [] };
      getTriage.mockResolvedValue({ ...t, state: 'OPEN' });
      changeTriage.mockResolvedValue({ ...t, state: 'ACKNOWLEDGED', updated_by: 'ed' });
      renderAt(`/alerts?alert=${alert(1).alert_id}&alert_host=web-01`);
      await screen.findByTestId('data-testid alerts-table');
      const badges = () => screen.getAllByTestId('data-testid triage-badge').map((b) => b.textContent);
      await waitFor(() => expect(badges()).toEqual(['ACKNOWLEDGED carol', 'OPEN', 'OPEN']));
      // The drawer's panel (the third badge) acknowledges alert 1; its row follows.
      const ack = await screen.findByRole('button', { name: /Acknowledge/ });
      await act(async () => ack.click());
      expect(changeTriage).toHaveBeenCalledWith(alert(1).alert_id, 'web-01', { state: 'ACKNOWLEDGED' });
      await waitFor(() => expect(badges()).toEqual(['ACKNOWLEDGED carol', 'ACKNOWLEDGED', 'ACKNOWLEDGED']));
    } finally {
      config.bootData.user.orgRole = saved;
    }
  });
});

describe('Alerts page bulk triage', () => {
  const config = jest.requireActual('@grafana/runtime').config;
  let saved: { role: string; login: string };
  beforeEach(() => {
    listAlerts.mockReset();
    changeMany.mockReset();
    saved = { role: config.bootData.user.orgRole, login: config.bootData.user.login };
  });
  afterEach(() => {
    config.bootData.user.orgRole = saved.role;
    config.bootData.user.login = saved.login;
  });
  const badges = () => screen.getAllByTestId('data-testid triage-badge').map((b) => b.textContent);

  it('gives a Viewer no selection', async () => {
    config.bootData.user.orgRole = 'Viewer';
    listAlerts.mockResolvedValue({ alerts: [alert(1), alert(2)] });
    renderAt('/alerts');
    await screen.findByTestId('data-testid alerts-table');
    expect(screen.queryByLabelText('select all shown')).not.toBeInTheDocument();
  });

  it('acknowledges and assigns the selected alerts in one request each, and says which were gone', async () => {
    config.bootData.user.orgRole = 'Editor';
    config.bootData.user.login = 'eve';
    listAlerts.mockResolvedValue({ alerts: [alert(3), alert(2), alert(1, { host_name: 'db-01' })] });
    renderAt('/alerts');
    await screen.findByTestId('data-testid alerts-table');
    fireEvent.click(screen.getByLabelText(`select ${alert(3).alert_id}`));
    fireEvent.click(screen.getByLabelText(`select ${alert(1).alert_id}`));
    expect(screen.getByTestId('data-testid triage-bulk').textContent).toContain('2 selected');
    changeMany.mockResolvedValueOnce({ applied: 2, missing: [] });
    await act(async () => screen.getByRole('button', { name: /Acknowledge/ }).click());
    expect(changeMany).toHaveBeenCalledWith(
      [
        { alert_id: alert(3).alert_id, host_name: 'web-01', event_time: alert(3).event_time },
        { alert_id: alert(1).alert_id, host_name: 'db-01', event_time: alert(1).event_time },
      ],
      { state: 'ACKNOWLEDGED' }
    );
    await waitFor(() => expect(badges()).toEqual(['ACKNOWLEDGED', 'OPEN', 'ACKNOWLEDGED']));
    expect(screen.queryByTestId('data-testid triage-bulk')).not.toBeInTheDocument();

    // Select all shown; one alert went with retention meanwhile.
    fireEvent.click(screen.getByLabelText('select all shown'));
    changeMany.mockResolvedValueOnce({ applied: 2, missing: [{ alert_id: alert(2).alert_id, host_name: 'web-01' }] });
    await act(async () => screen.getByRole('button', { name: /Assign to me/ }).click());
    expect(changeMany).toHaveBeenLastCalledWith(expect.any(Array), { assignee: 'eve' });
    expect(changeMany.mock.calls[1][0]).toHaveLength(3);
    await waitFor(() => expect(badges()).toEqual(['ACKNOWLEDGED eve', 'OPEN', 'ACKNOWLEDGED eve']));
    expect(screen.getByText(/1 of the selected alerts are no longer stored/)).toBeInTheDocument();
  });

  it('keeps the selection and shows the error when the change fails', async () => {
    config.bootData.user.orgRole = 'Admin';
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    changeMany.mockRejectedValue(new ApiError('changing triage state needs the Editor role or above', 403));
    renderAt('/alerts');
    await screen.findByTestId('data-testid alerts-table');
    fireEvent.click(screen.getByLabelText(`select ${alert(1).alert_id}`));
    await act(async () => screen.getByRole('button', { name: /Acknowledge/ }).click());
    expect(await screen.findByText('changing triage state needs the Editor role or above')).toBeInTheDocument();
    expect(screen.getByTestId('data-testid triage-bulk').textContent).toContain('1 selected');
    expect(badges()).toEqual(['OPEN']);
  });
});

describe('filterFromParams', () => {
  it('keeps only known, non-empty filters', () => {
    expect(filterFromParams(new URLSearchParams('host=a&type=&x=1&alert=z&from=now-1h&state=OPEN'))).toEqual({
      host: 'a',
      state: 'OPEN',
    });
  });
});
