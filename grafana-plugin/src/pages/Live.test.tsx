import React, { useEffect } from 'react';
import { MemoryRouter, useLocation } from 'react-router-dom';
import { of, Subject } from 'rxjs';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import {
  dataFrameToJSON,
  FieldType,
  LiveChannelConnectionState,
  LiveChannelEvent,
  LiveChannelEventType,
  toDataFrame,
} from '@grafana/data';
import { getGrafanaLiveSrv } from '@grafana/runtime';

import { api } from '../api/client';
import type { Alert, Triage } from '../api/types';
import { alert, pending } from '../test/fixtures';
import { Live } from './Live';

jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getGrafanaLiveSrv: jest.fn(),
}));
jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  api: { liveChannel: jest.fn(), listAlerts: jest.fn() },
}));
const liveSrv = getGrafanaLiveSrv as jest.Mock;
const liveChannel = api.liveChannel as jest.Mock;
const listAlerts = api.listAlerts as jest.Mock;

const CHANNEL = 'ds/tw-uid/alerts';

/**
 * A stream frame as RunStream sends it (pkg/plugin/query.go
 * alertStreamFrame): new alerts, or with triaged the alerts' triage changes.
 */
function frame(alerts: Alert[], schemaOnly = false, triaged = false) {
  const triage = (f: (t: Triage) => string | undefined) =>
    alerts.map((a) => (triaged && a.triage ? (f(a.triage) ?? null) : null));
  const json = dataFrameToJSON(
    toDataFrame({
      name: 'alerts',
      fields: [
        { name: 'time', type: FieldType.time, values: alerts.map((a) => Date.parse(a.event_time)) },
        { name: 'received_at', type: FieldType.time, values: alerts.map((a) => Date.parse(a.received_at)) },
        { name: 'host', type: FieldType.string, values: alerts.map((a) => a.host_name) },
        { name: 'type', type: FieldType.string, values: alerts.map((a) => a.tripwire_type) },
        { name: 'event', type: FieldType.string, values: alerts.map((a) => a.event_name) },
        { name: 'rule', type: FieldType.string, values: alerts.map((a) => a.rule_name) },
        { name: 'severity', type: FieldType.string, values: alerts.map((a) => a.severity) },
        { name: 'seq', type: FieldType.number, values: alerts.map((a) => a.seq) },
        { name: 'summary', type: FieldType.string, values: alerts.map((a) => a.summary) },
        { name: 'alert_id', type: FieldType.string, values: alerts.map((a) => a.alert_id) },
        { name: 'triage_changed', type: FieldType.boolean, values: alerts.map(() => triaged) },
        { name: 'triage_state', type: FieldType.string, values: triage((t) => t.state) },
        { name: 'triage_assignee', type: FieldType.string, values: triage((t) => t.assignee) },
        { name: 'triage_updated_by', type: FieldType.string, values: triage((t) => t.updated_by) },
        { name: 'triage_updated_at', type: FieldType.time, values: alerts.map(() => null) },
      ],
    })
  );
  return schemaOnly ? { schema: json.schema } : json;
}

// Events exactly as Grafana's CentrifugeLiveChannel emits them
// (public/app/features/live/centrifuge/channel.ts).
const status = (state: LiveChannelConnectionState, extra: object = {}): LiveChannelEvent =>
  ({ type: LiveChannelEventType.Status, id: CHANNEL, timestamp: Date.now(), state, ...extra }) as LiveChannelEvent;
const message = (alerts: Alert[]): LiveChannelEvent =>
  ({ type: LiveChannelEventType.Message, message: frame(alerts) }) as LiveChannelEvent;
/** Triage changes to the alerts, as the feed streams them. */
const changed = (alerts: Alert[]): LiveChannelEvent =>
  ({ type: LiveChannelEventType.Message, message: frame(alerts, false, true) }) as LiveChannelEvent;
const subscribed = () => status(LiveChannelConnectionState.Connected, { message: frame([], true) });

const probe = { search: '' };
function LocationProbe() {
  const loc = useLocation();
  useEffect(() => {
    probe.search = loc.search;
  });
  return null;
}

function renderAt(url = '/live') {
  return render(
    <MemoryRouter initialEntries={[url]}>
      <Live />
      <LocationProbe />
    </MemoryRouter>
  );
}

const rowTexts = () =>
  within(screen.getByTestId('data-testid live-table'))
    .getAllByRole('row')
    .slice(1)
    .map((r) => r.textContent);

describe('Live page under Grafana Live semantics', () => {
  let events: Subject<LiveChannelEvent>;
  let getStream: jest.Mock;
  beforeEach(() => {
    events = new Subject();
    getStream = jest.fn().mockReturnValue(events);
    liveSrv.mockReset().mockReturnValue({ getStream });
    liveChannel.mockReset().mockResolvedValue({ channel: CHANNEL });
    listAlerts.mockReset().mockResolvedValue({ alerts: [] });
  });

  it('shows loading until the channel reports a state', async () => {
    liveChannel.mockReturnValue(pending());
    renderAt();
    expect(screen.getByText(/Loading the live feed/)).toBeInTheDocument();
  });

  it('subscribes to the channel the backend names and shows the newest stored trips on connect', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(2), alert(1)] });
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalledWith({ scope: 'ds', stream: 'tw-uid', path: 'alerts' }));
    act(() => events.next(status(LiveChannelConnectionState.Pending)));
    expect(await screen.findByText('Waiting for trips…')).toBeInTheDocument();
    act(() => events.next(subscribed()));
    await waitFor(() => expect(rowTexts()).toHaveLength(2));
    expect(listAlerts).toHaveBeenCalledWith({ severity: '', host: '' }, undefined, 50);
    expect(screen.getByTestId('data-testid live-state').textContent).toBe('connected');
  });

  it('shows subscribe-time data carried by a Status event, once', async () => {
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    // A second subscriber in the same browser gets the channel's last frame
    // with its schema in the first Status event.
    act(() => events.next(status(LiveChannelConnectionState.Connected, { message: frame([alert(5)]) })));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    act(() => events.next(message([alert(5), alert(6)])));
    await waitFor(() => expect(rowTexts()).toHaveLength(2));
  });

  it('shows a subscription error with its reason', async () => {
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() =>
      events.next(status(LiveChannelConnectionState.Pending, { error: { code: 103, message: 'permission denied' } }))
    );
    expect(await screen.findByText('Streaming channel error: permission denied')).toBeInTheDocument();
    expect(screen.queryByText('Waiting for trips…')).not.toBeInTheDocument();
  });

  it('shows an invalid channel as Grafana reports it', async () => {
    getStream.mockReturnValue(of(status(LiveChannelConnectionState.Invalid, { error: 'invalid channel address' })));
    renderAt();
    expect(await screen.findByText('Streaming channel error: invalid channel address')).toBeInTheDocument();
  });

  it('shows a reconnect and fills the gap without duplicates', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1)] });
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    act(() => events.next(message([alert(2)])));
    act(() => events.next(status(LiveChannelConnectionState.Disconnected)));
    expect(await screen.findByText(/Connection to Grafana Live lost/)).toBeInTheDocument();
    // Trip 3 was committed while the browser was away.
    listAlerts.mockResolvedValue({ alerts: [alert(3), alert(2), alert(1)] });
    act(() => events.next(subscribed()));
    await waitFor(() => expect(rowTexts()).toHaveLength(3));
    expect(screen.queryByText(/Connection to Grafana Live lost/)).not.toBeInTheDocument();
    expect(screen.getByTestId('data-testid live-state').textContent).toBe('connected, reconnected 1×');
    expect(rowTexts()).toEqual([
      expect.stringContaining('#3'),
      expect.stringContaining('#2'),
      expect.stringContaining('#1'),
    ]);
  });

  it('prepends trips newest first, counts them, and de-duplicates', async () => {
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    act(() => events.next(message([alert(1, { severity: 'WARN' }), alert(2)])));
    act(() => events.next(message([alert(2), alert(3, { severity: 'INFO' })])));
    await waitFor(() => expect(rowTexts()).toHaveLength(3));
    expect(rowTexts()).toEqual([
      expect.stringContaining('#3'),
      expect.stringContaining('#2'),
      expect.stringContaining('#1'),
    ]);
    const counts = screen.getByTestId('data-testid live-counts');
    expect(counts.textContent).toContain('CRITICAL 1');
    expect(counts.textContent).toContain('WARN 1');
    expect(counts.textContent).toContain('INFO 1');
  });

  it('holds new trips while paused and shows them on resume', async () => {
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    act(() => events.next(message([alert(1)])));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    fireEvent.click(screen.getByTestId('data-testid live-pause'));
    act(() => events.next(message([alert(2), alert(3)])));
    expect(rowTexts()).toHaveLength(1);
    expect(screen.getByTestId('data-testid live-resume').textContent).toContain('2 new');
    fireEvent.click(screen.getByTestId('data-testid live-resume'));
    expect(rowTexts()).toHaveLength(3);
  });

  it('loads stored trips by triage state and streams new ones only where OPEN is wanted', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(1, { triage: { state: 'ACKNOWLEDGED', assignee: 'carol' } })] });
    renderAt('/live?state=ACKNOWLEDGED');
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    // The channel has no state: the page filters streamed rows by state.
    expect(liveChannel).toHaveBeenCalledWith({ severity: '', host: '' });
    act(() => events.next(subscribed()));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    expect(listAlerts).toHaveBeenCalledWith({ severity: '', host: '', state: 'ACKNOWLEDGED' }, undefined, 50);
    expect(rowTexts()[0]).toContain('ACKNOWLEDGED carol');
    // A new trip is OPEN: not shown under "Acknowledged".
    act(() => events.next(message([alert(2)])));
    expect(rowTexts()).toHaveLength(1);
    expect(screen.getByTestId('data-testid live-counts').textContent).toContain('CRITICAL 1');
  });

  it('updates a row in place when its triage changes, and counts no new trip', async () => {
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    act(() => events.next(message([alert(1), alert(2)])));
    await waitFor(() => expect(rowTexts()).toHaveLength(2));
    expect(rowTexts()[1]).toContain('OPEN');
    const acked = { state: 'ACKNOWLEDGED', assignee: 'carol', updated_by: 'alice' } as const;
    // Trip 9 is not shown: a change to it does not add it to an any-state view.
    act(() => events.next(changed([alert(1, { triage: acked }), alert(9, { triage: acked })])));
    await waitFor(() => expect(rowTexts()[1]).toContain('ACKNOWLEDGED carol'));
    expect(rowTexts()).toEqual([expect.stringContaining('#2'), expect.stringContaining('#1')]);
    expect(rowTexts()[0]).toContain('OPEN');
    expect(screen.getByTestId('data-testid live-counts').textContent).toContain('CRITICAL 2');
    // Grafana's subscribe-time copy of the last frame, or a replay, changes nothing more.
    act(() => events.next(changed([alert(1, { triage: acked })])));
    expect(rowTexts()).toHaveLength(2);
  });

  it('refreshes the state of shown rows from the stored trips after a reconnect', async () => {
    listAlerts.mockResolvedValue({ alerts: [alert(2), alert(1)] });
    renderAt();
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    await waitFor(() => expect(rowTexts()).toHaveLength(2));
    act(() => events.next(status(LiveChannelConnectionState.Disconnected)));
    // Trip 1 was acknowledged while the browser was away.
    listAlerts.mockResolvedValue({
      alerts: [alert(2), alert(1, { triage: { state: 'ACKNOWLEDGED', assignee: 'erin' } })],
    });
    act(() => events.next(subscribed()));
    await waitFor(() => expect(rowTexts()[1]).toContain('ACKNOWLEDGED erin'));
    expect(rowTexts()).toHaveLength(2);
    expect(screen.getByTestId('data-testid live-counts').textContent).toContain('CRITICAL 2');
  });

  it('drops a row from a state view it no longer matches, and takes in one that now does', async () => {
    renderAt('/live?state=OPEN');
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    act(() => events.next(message([alert(1), alert(2)])));
    await waitFor(() => expect(rowTexts()).toHaveLength(2));
    act(() => events.next(changed([alert(1, { triage: { state: 'ACKNOWLEDGED', updated_by: 'alice' } })])));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    expect(rowTexts()[0]).toContain('#2');
    // Reopened: back under "Unacknowledged", in its place by time.
    act(() => events.next(changed([alert(1, { triage: { state: 'OPEN', updated_by: 'bob' } })])));
    await waitFor(() => expect(rowTexts()).toHaveLength(2));
    expect(rowTexts()).toEqual([expect.stringContaining('#2'), expect.stringContaining('#1')]);
    expect(screen.getByTestId('data-testid live-counts').textContent).toContain('CRITICAL 2');
  });

  it('takes in an alert acknowledged while an "Acknowledged" view is open', async () => {
    renderAt('/live?state=ACKNOWLEDGED');
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    expect(await screen.findByText('No acknowledged trips among the newest')).toBeInTheDocument();
    act(() => events.next(changed([alert(4, { triage: { state: 'ACKNOWLEDGED', assignee: 'dave' } })])));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    expect(rowTexts()[0]).toContain('ACKNOWLEDGED dave');
  });

  it('shows new trips as OPEN under "Unacknowledged"', async () => {
    renderAt('/live?state=OPEN');
    await waitFor(() => expect(getStream).toHaveBeenCalled());
    act(() => events.next(subscribed()));
    await waitFor(() =>
      expect(listAlerts).toHaveBeenCalledWith({ severity: '', host: '', state: 'OPEN' }, undefined, 50)
    );
    act(() => events.next(message([alert(2)])));
    await waitFor(() => expect(rowTexts()).toHaveLength(1));
    expect(rowTexts()[0]).toContain('OPEN');
  });

  it('keeps the filters in the URL and asks the backend for their channel', async () => {
    renderAt('/live?severity=WARN,CRITICAL&host=web-01');
    await waitFor(() => expect(liveChannel).toHaveBeenCalledWith({ severity: 'WARN,CRITICAL', host: 'web-01' }));
    const hostInput = screen.getByPlaceholderText('any');
    expect(hostInput).toHaveValue('web-01');
    fireEvent.change(hostInput, { target: { value: 'db 01' } });
    fireEvent.keyDown(hostInput, { key: 'Enter' });
    await waitFor(() => expect(liveChannel).toHaveBeenLastCalledWith({ severity: 'WARN,CRITICAL', host: 'db 01' }));
    expect(new URLSearchParams(probe.search).get('host')).toBe('db 01');
  });
});
