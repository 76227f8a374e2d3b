import React, { useCallback, useMemo, useState } from 'react';
import { useAsyncRetry } from 'react-use';
import { css } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { Badge, Button, Checkbox, Column, Field, Input, Stack, TextArea, useStyles2 } from '@grafana/ui';

import { canTriage, currentLogin, MAX_BULK, triageApi } from '../api/triage';
import type { Alert, AlertRef, AlertTriage, Triage, TriageChange, TriageEntry } from '../api/types';
import { ErrorView, Loading } from './States';
import { testIds } from './testIds';
import { fmtTime } from './time';

/** An alert's triage state, and whom it is assigned to. */
export function TriageBadge({ triage }: { triage?: Triage }) {
  const state = triage?.state ?? 'OPEN';
  return (
    <span data-testid={testIds.triage.badge}>
      <Badge text={state} color={state === 'OPEN' ? 'orange' : 'green'} />
      {triage?.assignee ? ` ${triage.assignee}` : ''}
    </span>
  );
}

function describe(e: TriageEntry): string {
  switch (e.action) {
    case 'state':
      return e.state === 'OPEN' ? 'reopened' : `set ${e.state}`;
    case 'assign':
      return e.assignee ? `assigned to ${e.assignee}` : 'unassigned';
    case 'note':
      return 'noted';
  }
}

/**
 * The drawer's triage section: the state, the assignee and every change with
 * who made it. Editors and Admins acknowledge, reopen, assign and annotate;
 * a Viewer reads only (the backend refuses them with 403 too). onChange gets
 * the triage after each change, for the list to show it.
 */
export function TriagePanel({
  id,
  host,
  onChange,
}: {
  id: string;
  host?: string;
  onChange?: (t: AlertTriage) => void;
}) {
  const s = useStyles2(getStyles);
  const loaded = useAsyncRetry(() => triageApi.get(id, host), [id, host]);
  const [changed, setChanged] = useState<AlertTriage>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [note, setNote] = useState('');
  const [assignee, setAssignee] = useState<string>();
  const triage = changed && changed.alert_id === id ? changed : loaded.value;

  if (loaded.error) {
    return <ErrorView title="Could not load the triage" error={loaded.error} onRetry={loaded.retry} />;
  }
  if (!triage) {
    return <Loading what="the triage" />;
  }
  const apply = (c: TriageChange) => {
    setBusy(true);
    setError(undefined);
    // The answer names the host, so a shared id stays this alert.
    triageApi
      .change(id, host ?? triage.host_name, c)
      .then(
        (t) => {
          setChanged(t);
          setAssignee(undefined);
          if (c.note) {
            setNote('');
          }
          onChange?.(t);
        },
        (e: unknown) => setError(e)
      )
      .finally(() => setBusy(false));
  };
  const me = currentLogin();
  const assigneeValue = assignee ?? triage.assignee ?? '';

  return (
    <div data-testid={testIds.triage.panel}>
      <Stack direction="column" gap={1}>
        <div>
          <TriageBadge triage={triage} />
          {triage.updated_by && (
            <span className={s.muted}>
              {' '}
              last changed by {triage.updated_by} at {fmtTime(triage.updated_at ?? '')}
            </span>
          )}
        </div>
        {error ? <ErrorView title="The change was not saved" error={error} /> : null}
        {canTriage() && (
          <Stack direction="column" gap={1}>
            <Stack gap={1}>
              {triage.state === 'OPEN' ? (
                <Button size="sm" icon="check" disabled={busy} onClick={() => apply({ state: 'ACKNOWLEDGED' })}>
                  Acknowledge
                </Button>
              ) : (
                <Button size="sm" variant="secondary" disabled={busy} onClick={() => apply({ state: 'OPEN' })}>
                  Reopen
                </Button>
              )}
              {me && triage.assignee !== me && (
                <Button size="sm" variant="secondary" disabled={busy} onClick={() => apply({ assignee: me })}>
                  Assign to me
                </Button>
              )}
            </Stack>
            <Field label="Assignee" description="A Grafana login; empty unassigns">
              <Stack gap={1}>
                <Input
                  aria-label="assignee"
                  width={24}
                  value={assigneeValue}
                  onChange={(e) => setAssignee(e.currentTarget.value)}
                />
                <Button
                  size="sm"
                  variant="secondary"
                  disabled={busy || assigneeValue.trim() === (triage.assignee ?? '')}
                  onClick={() => apply({ assignee: assigneeValue.trim() })}
                >
                  Assign
                </Button>
              </Stack>
            </Field>
            <Field label="Note">
              <TextArea aria-label="note" rows={2} value={note} onChange={(e) => setNote(e.currentTarget.value)} />
            </Field>
            <div>
              <Button
                size="sm"
                variant="secondary"
                disabled={busy || note.trim() === ''}
                onClick={() => apply({ note: note.trim() })}
              >
                Add note
              </Button>
            </div>
          </Stack>
        )}
        {triage.history.length > 0 && (
          <table className={s.history} data-testid={testIds.triage.history}>
            <tbody>
              {triage.history.map((e, i) => (
                <tr key={i}>
                  <td>{fmtTime(e.at)}</td>
                  <td>{e.actor}</td>
                  <td>{describe(e)}</td>
                  <td>{e.note ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Stack>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  muted: css({ color: theme.colors.text.secondary }),
  history: css({
    width: '100%',
    td: { paddingRight: theme.spacing(2), verticalAlign: 'top' },
    'td:last-child': { wordBreak: 'break-word' },
  }),
});

const refKey = (a: AlertRef) => `${a.host_name}/${a.alert_id}`;

/**
 * Bulk triage for a list of alerts: a checkbox column (for Editors and
 * Admins only) and, while alerts are selected, a toolbar that acknowledges,
 * reopens or assigns them in one request. onTriaged gets each changed
 * alert's new triage, for the list to show it. Selections of alerts no
 * longer listed (another filter) are dropped.
 */
export function useBulkTriage(
  alerts: Alert[],
  triageOf: (a: Alert) => Triage | undefined,
  onTriaged: (changed: Array<{ ref: AlertRef; triage: Triage }>) => void
): { column?: Column<Alert>; toolbar: React.ReactNode } {
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ error?: unknown; missing?: number }>();
  const allowed = canTriage();
  const selected = useMemo(() => alerts.filter((a) => picked.has(refKey(a))), [alerts, picked]);
  const toggle = useCallback(
    (a: Alert) =>
      setPicked((prev) => {
        const next = new Set(prev);
        if (!next.delete(refKey(a))) {
          next.add(refKey(a));
        }
        return next;
      }),
    []
  );
  const allShown = alerts.length > 0 && selected.length === alerts.length;
  const column = useMemo<Column<Alert> | undefined>(
    () =>
      allowed
        ? {
            id: 'select',
            disableGrow: true,
            header: () => (
              <Checkbox
                aria-label="select all shown"
                value={allShown}
                onChange={() => setPicked(allShown ? new Set() : new Set(alerts.map(refKey)))}
              />
            ),
            cell: ({ row }) => (
              <Checkbox
                aria-label={`select ${row.original.alert_id}`}
                value={picked.has(refKey(row.original))}
                onChange={() => toggle(row.original)}
              />
            ),
          }
        : undefined,
    [allowed, allShown, alerts, picked, toggle]
  );

  const apply = (change: TriageChange) => {
    const refs = selected
      .slice(0, MAX_BULK)
      .map((a) => ({ alert_id: a.alert_id, host_name: a.host_name, event_time: a.event_time }));
    setBusy(true);
    setResult(undefined);
    triageApi
      .changeMany(refs, change)
      .then(
        (r) => {
          const missing = new Set(r.missing.map(refKey));
          const now = new Date().toISOString();
          const me = currentLogin();
          const byKey = new Map(selected.map((a) => [refKey(a), a]));
          const changed = refs
            .filter((ref) => !missing.has(refKey(ref)))
            .map((ref) => {
              const before = triageOf(byKey.get(refKey(ref))!) ?? { state: 'OPEN' as const };
              const assignee = change.assignee === undefined ? before.assignee : change.assignee || undefined;
              return {
                ref,
                triage: { ...before, state: change.state ?? before.state, assignee, updated_at: now, updated_by: me },
              };
            });
          onTriaged(changed);
          setPicked(new Set());
          setResult(r.missing.length > 0 ? { missing: r.missing.length } : undefined);
        },
        (e: unknown) => setResult({ error: e })
      )
      .finally(() => setBusy(false));
  };

  const me = currentLogin();
  let toolbar: React.ReactNode = null;
  if (allowed && (selected.length > 0 || result)) {
    toolbar = (
      <div data-testid={testIds.triage.bulk}>
        <Stack direction="column" gap={1}>
          {selected.length > 0 && (
            <Stack gap={1} alignItems="center">
              <span>
                {selected.length} selected{selected.length > MAX_BULK ? ` (the first ${MAX_BULK} are changed)` : ''}
              </span>
              <Button size="sm" icon="check" disabled={busy} onClick={() => apply({ state: 'ACKNOWLEDGED' })}>
                Acknowledge
              </Button>
              <Button size="sm" variant="secondary" disabled={busy} onClick={() => apply({ state: 'OPEN' })}>
                Reopen
              </Button>
              {me && (
                <Button size="sm" variant="secondary" disabled={busy} onClick={() => apply({ assignee: me })}>
                  Assign to me
                </Button>
              )}
              <Button size="sm" variant="secondary" fill="text" onClick={() => setPicked(new Set())}>
                Clear selection
              </Button>
            </Stack>
          )}
          {result?.error ? <ErrorView title="The change was not saved" error={result.error} /> : null}
          {result?.missing ? (
            <span>{result.missing} of the selected alerts are no longer stored and were not changed.</span>
          ) : null}
        </Stack>
      </div>
    );
  }
  return { column, toolbar };
}
