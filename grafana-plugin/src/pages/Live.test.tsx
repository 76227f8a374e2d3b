import React from 'react';
import { Subject } from 'rxjs';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';

import { ApiError, datasourceUid, liveAlerts } from '../api/client';
import type { LiveAlert } from '../api/types';
import { alert, pending } from '../test/fixtures';
import { Live } from './Live';

jest.mock('../api/client', () => ({
  ...jest.requireActual('../api/client'),
  datasourceUid: jest.fn(),
  liveAlerts: jest.fn(),
}));
const uid = datasourceUid as jest.Mock;
const live = liveAlerts as jest.Mock;

const liveAlert = (i: number, severity: LiveAlert['severity'] = 'CRITICAL'): LiveAlert => {
  const { event_detail, received_at, ...rest } = alert(i, { severity });
  return rest;
};

describe('Live page', () => {
  let feed: Subject<LiveAlert[]>;
  beforeEach(() => {
    feed = new Subject();
    uid.mockReset().mockResolvedValue('tw-uid');
    live.mockReset().mockReturnValue(feed);
  });

  it('shows loading until the datasource is known', () => {
    uid.mockReturnValue(pending());
    render(<Live />);
    expect(screen.getByText(/Loading the live feed/)).toBeInTheDocument();
  });

  it('waits for trips on an empty feed', async () => {
    render(<Live />);
    expect(await screen.findByText('Waiting for trips…')).toBeInTheDocument();
    expect(live).toHaveBeenCalledWith('tw-uid', 'alerts');
  });

  it('explains a missing datasource', async () => {
    uid.mockRejectedValue(new ApiError('No TripWire datasource is configured.', 404));
    render(<Live />);
    expect(await screen.findByText('No TripWire datasource is configured.')).toBeInTheDocument();
  });

  it('shows a stream error', async () => {
    render(<Live />);
    await screen.findByText('Waiting for trips…');
    act(() => feed.error(new Error('channel closed')));
    expect(await screen.findByText('channel closed')).toBeInTheDocument();
  });

  it('prepends trips newest first, counts them, and de-duplicates', async () => {
    render(<Live />);
    await screen.findByText('Waiting for trips…');
    act(() => feed.next([liveAlert(1, 'WARN'), liveAlert(2)]));
    act(() => feed.next([liveAlert(2), liveAlert(3, 'INFO')]));
    const rows = within(screen.getByTestId('data-testid live-table')).getAllByRole('row').slice(1);
    expect(rows.map((r) => r.textContent)).toEqual([
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
    render(<Live />);
    await screen.findByText('Waiting for trips…');
    act(() => feed.next([liveAlert(1)]));
    fireEvent.click(screen.getByTestId('data-testid live-pause'));
    act(() => feed.next([liveAlert(2), liveAlert(3)]));
    expect(within(screen.getByTestId('data-testid live-table')).getAllByRole('row')).toHaveLength(2);
    expect(screen.getByTestId('data-testid live-resume').textContent).toContain('2 new');
    fireEvent.click(screen.getByTestId('data-testid live-resume'));
    expect(within(screen.getByTestId('data-testid live-table')).getAllByRole('row')).toHaveLength(4);
  });

  it('moves to a filtered channel when a filter changes', async () => {
    render(<Live />);
    await screen.findByText('Waiting for trips…');
    const hostInput = screen.getByPlaceholderText('any');
    fireEvent.change(hostInput, { target: { value: 'web-01' } });
    fireEvent.keyDown(hostInput, { key: 'Enter' });
    await waitFor(() => expect(live).toHaveBeenLastCalledWith('tw-uid', 'alerts/host=web-01'));
  });
});
