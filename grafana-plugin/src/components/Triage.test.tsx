import React from 'react';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { config } from '@grafana/runtime';

import { ApiError } from '../api/client';
import { triageApi } from '../api/triage';
import type { AlertTriage } from '../api/types';
import { alert } from '../test/fixtures';
import { TriageBadge, TriagePanel } from './Triage';

jest.mock('../api/triage', () => ({
  ...jest.requireActual('../api/triage'),
  triageApi: { get: jest.fn(), change: jest.fn() },
}));
const get = triageApi.get as jest.Mock;
const change = triageApi.change as jest.Mock;

const a = alert(7);
const open = (patch: Partial<AlertTriage> = {}): AlertTriage => ({
  alert_id: a.alert_id,
  host_name: a.host_name,
  event_time: a.event_time,
  state: 'OPEN',
  history: [],
  ...patch,
});
const acked: AlertTriage = open({
  state: 'ACKNOWLEDGED',
  assignee: 'carol',
  updated_at: '2026-11-26T12:05:00Z',
  updated_by: 'alice',
  history: [
    { at: '2026-11-26T12:04:00Z', actor: 'alice', action: 'state', state: 'ACKNOWLEDGED' },
    { at: '2026-11-26T12:05:00Z', actor: 'alice', action: 'assign', assignee: 'carol' },
    { at: '2026-11-26T12:05:00Z', actor: 'alice', action: 'note', note: 'backup job' },
  ],
});

function asRole(role: string, login = 'ed', run: () => Promise<void>) {
  const user = config.bootData.user;
  const saved = { role: user.orgRole, login: user.login };
  return async () => {
    user.orgRole = role as typeof saved.role;
    user.login = login;
    try {
      await run();
    } finally {
      user.orgRole = saved.role;
      user.login = saved.login;
    }
  };
}

describe('TriagePanel', () => {
  beforeEach(() => {
    get.mockReset();
    change.mockReset();
  });

  it(
    'shows a Viewer the state, the assignee and who did what, with no way to change it',
    asRole('Viewer', 'vic', async () => {
      get.mockResolvedValue(acked);
      render(<TriagePanel id={a.alert_id} host={a.host_name} />);
      expect(await screen.findByText('ACKNOWLEDGED')).toBeInTheDocument();
      expect(get).toHaveBeenCalledWith(a.alert_id, a.host_name);
      expect(screen.getByText(/last changed by alice/)).toBeInTheDocument();
      const rows = within(screen.getByTestId('data-testid triage-history')).getAllByRole('row');
      expect(rows.map((r) => r.textContent)).toEqual([
        expect.stringContaining('aliceset ACKNOWLEDGED'),
        expect.stringContaining('aliceassigned to carol'),
        expect.stringContaining('alicenotedbackup job'),
      ]);
      expect(screen.queryByRole('button', { name: /Acknowledge|Reopen|Assign|Add note/ })).not.toBeInTheDocument();
    })
  );

  it(
    'lets an Editor acknowledge, and shows the answer',
    asRole('Editor', 'ed', async () => {
      get.mockResolvedValue(open());
      const onChange = jest.fn();
      change.mockResolvedValue(open({ state: 'ACKNOWLEDGED', updated_by: 'ed', updated_at: '2026-11-26T12:06:00Z' }));
      render(<TriagePanel id={a.alert_id} host={a.host_name} onChange={onChange} />);
      const b = await screen.findByRole('button', { name: /Acknowledge/ });
      await act(async () => b.click());
      expect(change).toHaveBeenCalledWith(a.alert_id, a.host_name, { state: 'ACKNOWLEDGED' });
      expect(await screen.findByRole('button', { name: /Reopen/ })).toBeInTheDocument();
      expect(screen.getByText(/last changed by ed/)).toBeInTheDocument();
      expect(onChange).toHaveBeenCalledWith(expect.objectContaining({ state: 'ACKNOWLEDGED' }));
    })
  );

  it(
    'assigns to the signed-in user, to a login typed in, and adds a note',
    asRole('Admin', 'root', async () => {
      get.mockResolvedValue(open());
      change.mockImplementation((_id, _host, c) => Promise.resolve(open({ assignee: c.assignee })));
      render(<TriagePanel id={a.alert_id} host={a.host_name} />);
      const b = await screen.findByRole('button', { name: /Assign to me/ });
      await act(async () => b.click());
      expect(change).toHaveBeenLastCalledWith(a.alert_id, a.host_name, { assignee: 'root' });
      await waitFor(() => expect(screen.getByLabelText('assignee')).toHaveValue('root'));

      fireEvent.change(screen.getByLabelText('assignee'), { target: { value: ' carol ' } });
      await act(async () => screen.getByRole('button', { name: /^Assign$/ }).click());
      expect(change).toHaveBeenLastCalledWith(a.alert_id, a.host_name, { assignee: 'carol' });

      const addNote = screen.getByRole('button', { name: /Add note/ });
      expect(addNote).toBeDisabled();
      fireEvent.change(screen.getByLabelText('note'), { target: { value: 'called the owner' } });
      await act(async () => addNote.click());
      expect(change).toHaveBeenLastCalledWith(a.alert_id, a.host_name, { note: 'called the owner' });
      await waitFor(() => expect(screen.getByLabelText('note')).toHaveValue(''));
    })
  );

  it(
    "shows the server's refusal and keeps the state",
    asRole('Editor', 'ed', async () => {
      get.mockResolvedValue(open());
      change.mockRejectedValue(new ApiError('changing triage state needs the Editor role or above', 403));
      render(<TriagePanel id={a.alert_id} host={a.host_name} />);
      const b = await screen.findByRole('button', { name: /Acknowledge/ });
      await act(async () => b.click());
      expect(await screen.findByText('changing triage state needs the Editor role or above')).toBeInTheDocument();
      expect(screen.getByRole('button', { name: /Acknowledge/ })).toBeInTheDocument();
    })
  );
});

describe('TriageBadge', () => {
  it('says OPEN for an alert nobody triaged, and names the assignee', () => {
    const { rerender } = render(<TriageBadge />);
    expect(screen.getByTestId('data-testid triage-badge').textContent).toBe('OPEN');
    rerender(<TriageBadge triage={{ state: 'ACKNOWLEDGED', assignee: 'carol' }} />);
    expect(screen.getByTestId('data-testid triage-badge').textContent).toBe('ACKNOWLEDGED carol');
  });
});
