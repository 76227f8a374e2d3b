import React, { useCallback, useMemo, useState } from 'react';
import { useAsyncRetry } from 'react-use';
import { useSearchParams } from 'react-router-dom';
import { css, cx } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';
import {
  Badge,
  BadgeColor,
  Button,
  Column,
  ConfirmButton,
  Field,
  Input,
  InteractiveTable,
  RadioButtonGroup,
  Stack,
  Switch,
  TextArea,
  useStyles2,
} from '@grafana/ui';

import { HOST_ATTRIBUTE, RULE_SCOPE, type RuleScope } from '../api/contract.gen';
import {
  canEditRules,
  rulesApi,
  RuleSetError,
  type FieldError,
  type Rollout,
  type RuleSet,
  type RuleSetDiff,
  type RuleSetEdit,
  type RuleSetHost,
} from '../api/rules';
import { StatusBadge } from '../components/Severity';
import { Empty, ErrorView, Loading } from '../components/States';
import { testIds } from '../components/testIds';
import { ago, fmtTime } from '../components/time';
import { withParams } from '../components/urlParams';

const NEW_RULES = `- name: shadow-read
  type: file
  severity: CRITICAL
  paths: [/etc/shadow]
`;

/** What a set applies to, in words. */
export function scopeText(rs: Pick<RuleSet, 'scope' | 'selector' | 'host_name'>): string {
  switch (rs.scope) {
    case RULE_SCOPE.Global:
      return 'every host';
    case RULE_SCOPE.Group:
      return Object.entries(rs.selector ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
    case RULE_SCOPE.Host:
      return `host ${rs.host_name ?? ''}`;
  }
}

/**
 * Rules: the central rule sets pushed to the agents. Everyone with the Viewer
 * role reads them, the versions and the hosts each applies to; Editors and
 * Admins create, edit, disable and enable them (the backend refuses anyone
 * else with 403). Every save is a new version attributed to the signed-in
 * user; edits are checked by the validator `tripwire validate` runs.
 */
export function Rules() {
  // The set shown is in the URL (?set=ID), so a link or the back button
  // reaches it; an edit in progress is not.
  const [params, setParams] = useSearchParams();
  const [editing, setEditing] = useState<{ set?: RuleSet }>();
  const host = params.get('host') ?? '';
  const shown = Number(params.get('set') ?? '');
  const list = useAsyncRetry(() => rulesApi.list(host || undefined), [host]);
  const show = useCallback(
    (id?: number) => setParams((p) => withParams(p, { set: id ? String(id) : undefined })),
    [setParams]
  );
  const saved = useCallback(
    (rs: RuleSet) => {
      setEditing(undefined);
      list.retry();
      show(rs.id);
    },
    [list, show]
  );

  let body: React.ReactNode;
  if (editing) {
    body = <RuleSetEditor set={editing.set} onSaved={saved} onCancel={() => setEditing(undefined)} />;
  } else if (Number.isInteger(shown) && shown > 0) {
    body = (
      <RuleSetDetail
        key={shown}
        id={shown}
        onEdit={(set) => setEditing({ set })}
        onBack={() => show(undefined)}
        onChanged={() => list.retry()}
      />
    );
  } else {
    body = (
      <RuleSetList
        sets={list.value?.rule_sets}
        host={host}
        onAllHosts={() => setParams((p) => withParams(p, { host: undefined }))}
        error={list.error}
        retry={list.retry}
        onOpen={show}
        onNew={() => setEditing({})}
      />
    );
  }
  return <PluginPage>{body}</PluginPage>;
}

function RuleSetList({
  sets,
  host,
  onAllHosts,
  error,
  retry,
  onOpen,
  onNew,
}: {
  sets?: RuleSet[];
  host: string;
  onAllHosts: () => void;
  error?: unknown;
  retry: () => void;
  onOpen: (id: number) => void;
  onNew: () => void;
}) {
  const s = useStyles2(getStyles);
  const columns = useMemo<Array<Column<RuleSet>>>(
    () => [
      {
        id: 'name',
        header: 'Rule set',
        cell: ({ row: { original: rs } }) => (
          <button type="button" className={s.linkButton} onClick={() => onOpen(rs.id)}>
            {rs.name}
          </button>
        ),
      },
      { id: 'scope', header: 'Applies to', cell: ({ row }) => scopeText(row.original) },
      { id: 'enabled', header: 'State', cell: ({ row }) => <EnabledBadge enabled={row.original.enabled} /> },
      { id: 'version', header: 'Version' },
      { id: 'author', header: 'Saved by' },
      {
        id: 'created_at',
        header: 'Saved',
        cell: ({ row }) => <span title={fmtTime(row.original.created_at)}>{ago(row.original.created_at)}</span>,
      },
    ],
    [s, onOpen]
  );
  let body: React.ReactNode;
  if (error) {
    body = <ErrorView title="Could not load rule sets" error={error} onRetry={retry} />;
  } else if (!sets) {
    body = <Loading what="rule sets" />;
  } else if (sets.length === 0 && host) {
    body = <Empty message={`No rule set takes in ${host}`} />;
  } else if (sets.length === 0) {
    body = (
      <Empty message="No central rule set yet">
        Agents watch only the rules of their own configuration until a rule set is created here.
      </Empty>
    );
  } else {
    body = (
      <div data-testid={testIds.rules.table}>
        <InteractiveTable columns={columns} data={sets} getRowId={(rs) => String(rs.id)} />
      </div>
    );
  }
  return (
    <Stack direction="column" gap={1}>
      {host && (
        <div className={s.note}>
          Rule sets that take in host {host}, enabled or not.{' '}
          <Button size="sm" variant="secondary" fill="text" onClick={onAllHosts}>
            All rule sets
          </Button>
        </div>
      )}
      {canEditRules() && (
        <div>
          <Button icon="plus" onClick={onNew}>
            New rule set
          </Button>
        </div>
      )}
      {body}
    </Stack>
  );
}

function EnabledBadge({ enabled }: { enabled: boolean }) {
  return <Badge text={enabled ? 'enabled' : 'disabled'} color={enabled ? 'green' : 'red'} />;
}

/** The messages for one field, each rules problem prefixed with its line and key. */
function messagesFor(errors: FieldError[], field: string): string | undefined {
  const own = errors.filter((e) => e.field === field);
  if (own.length === 0) {
    return undefined;
  }
  return own.map((e) => [e.line ? `line ${e.line}` : '', e.key ?? '', e.message].filter(Boolean).join(': ')).join('\n');
}

interface SelectorRow {
  key: string;
  value: string;
}

function toRows(sel?: Record<string, string>): SelectorRow[] {
  const rows = Object.entries(sel ?? {}).map(([key, value]) => ({ key, value }));
  return rows.length > 0 ? rows : [{ key: HOST_ATTRIBUTE.OSType, value: '' }];
}

/** The selector's attribute = value rows (a component of its own: Field hands its child an invalid prop). */
function SelectorInput({ rows, onChange }: { rows: SelectorRow[]; onChange: (rows: SelectorRow[]) => void }) {
  const setRow = (i: number, row: Partial<SelectorRow>) =>
    onChange(rows.map((r, j) => (j === i ? { ...r, ...row } : r)));
  return (
    <Stack direction="column" gap={0.5}>
      {rows.map((r, i) => (
        <Stack key={i} gap={0.5}>
          <Input
            aria-label={`Attribute ${i + 1}`}
            value={r.key}
            onChange={(e) => setRow(i, { key: e.currentTarget.value })}
          />
          <Input
            aria-label={`Value ${i + 1}`}
            value={r.value}
            onChange={(e) => setRow(i, { value: e.currentTarget.value })}
          />
          <Button
            variant="secondary"
            icon="trash-alt"
            aria-label={`Remove attribute ${i + 1}`}
            onClick={() => onChange(rows.filter((_, j) => j !== i))}
          />
        </Stack>
      ))}
      <div>
        <Button size="sm" variant="secondary" icon="plus" onClick={() => onChange([...rows, { key: '', value: '' }])}>
          Attribute
        </Button>
      </div>
    </Stack>
  );
}

const SCOPE_OPTIONS = [
  { label: 'Every host', value: RULE_SCOPE.Global },
  { label: 'Host group', value: RULE_SCOPE.Group },
  { label: 'One host', value: RULE_SCOPE.Host },
];

/**
 * Creates a set, or edits one into its next version. Problems come back on
 * the field they concern; those in the YAML name the line and key as
 * `tripwire validate` does. "Check" validates and previews the hosts without
 * saving.
 */
export function RuleSetEditor({
  set,
  onSaved,
  onCancel,
}: {
  set?: RuleSet;
  onSaved: (rs: RuleSet) => void;
  onCancel: () => void;
}) {
  const s = useStyles2(getStyles);
  const [name, setName] = useState(set?.name ?? '');
  const [scope, setScope] = useState<RuleScope>(set?.scope ?? RULE_SCOPE.Global);
  const [selector, setSelector] = useState<SelectorRow[]>(toRows(set?.selector));
  const [hostName, setHostName] = useState(set?.host_name ?? '');
  const [enabled, setEnabled] = useState(set?.enabled ?? true);
  const [rules, setRules] = useState(set?.rules ?? NEW_RULES);
  const [note, setNote] = useState('');
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [failure, setFailure] = useState<unknown>();
  const [hosts, setHosts] = useState<RuleSetHost[]>();
  const [busy, setBusy] = useState(false);

  const edit = (): RuleSetEdit => {
    const e: RuleSetEdit = { scope, rules, enabled, note };
    if (!set) {
      e.name = name;
    } else {
      e.base_version = set.version;
    }
    if (scope === RULE_SCOPE.Group) {
      e.selector = Object.fromEntries(selector.map((r) => [r.key.trim(), r.value.trim()]));
    }
    if (scope === RULE_SCOPE.Host) {
      e.host_name = hostName.trim();
    }
    return e;
  };
  const failed = (e: unknown) => {
    if (e instanceof RuleSetError && e.fields.length > 0) {
      setErrors(e.fields);
    } else {
      setFailure(e);
    }
  };
  const check = () => {
    setBusy(true);
    setFailure(undefined);
    (set ? rulesApi.check(edit(), set.id) : rulesApi.check(edit()))
      .then((r) => {
        setErrors(r.errors);
        setHosts(r.hosts);
      }, failed)
      .finally(() => setBusy(false));
  };
  const save = () => {
    setBusy(true);
    setFailure(undefined);
    setErrors([]);
    (set ? rulesApi.update(set.id, edit()) : rulesApi.create(edit()))
      .then(onSaved, failed)
      .finally(() => setBusy(false));
  };

  return (
    <div data-testid={testIds.rules.editor}>
      <h3>{set ? `Edit ${set.name} (version ${set.version})` : 'New rule set'}</h3>
      {!set && (
        <div data-testid={testIds.rules.field('name')}>
          <Field label="Name" invalid={!!messagesFor(errors, 'name')} error={messagesFor(errors, 'name')}>
            <Input aria-label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
          </Field>
        </div>
      )}
      <div data-testid={testIds.rules.field('scope')}>
        <Field label="Applies to" invalid={!!messagesFor(errors, 'scope')} error={messagesFor(errors, 'scope')}>
          <RadioButtonGroup options={SCOPE_OPTIONS} value={scope} onChange={(v) => setScope(v)} />
        </Field>
      </div>
      {scope === RULE_SCOPE.Group && (
        <div data-testid={testIds.rules.field('selector')}>
          <Field
            label="Host attributes"
            description={`Every attribute must match. Known: ${Object.values(HOST_ATTRIBUTE).join(', ')}`}
            invalid={!!messagesFor(errors, 'selector')}
            error={messagesFor(errors, 'selector')}
          >
            <SelectorInput rows={selector} onChange={setSelector} />
          </Field>
        </div>
      )}
      {scope === RULE_SCOPE.Host && (
        <div data-testid={testIds.rules.field('host_name')}>
          <Field
            label="Host"
            description="The host's name: its certificate CN"
            invalid={!!messagesFor(errors, 'host_name')}
            error={messagesFor(errors, 'host_name')}
          >
            <Input aria-label="Host" value={hostName} onChange={(e) => setHostName(e.currentTarget.value)} />
          </Field>
        </div>
      )}
      <div data-testid={testIds.rules.field('enabled')}>
        <Field label="Enabled" invalid={!!messagesFor(errors, 'enabled')} error={messagesFor(errors, 'enabled')}>
          <Switch aria-label="Enabled" value={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
        </Field>
      </div>
      <div data-testid={testIds.rules.field('rules')}>
        <Field
          label="Rules"
          description="A YAML list in the agent's rules: schema (docs/agent-config.md)"
          invalid={!!messagesFor(errors, 'rules')}
          error={<span className={s.preLine}>{messagesFor(errors, 'rules')}</span>}
        >
          <TextArea
            aria-label="Rules"
            className={s.code}
            rows={Math.min(30, Math.max(8, rules.split('\n').length + 1))}
            value={rules}
            onChange={(e) => setRules(e.currentTarget.value)}
          />
        </Field>
      </div>
      <div data-testid={testIds.rules.field('note')}>
        <Field
          label="Note"
          description="Why: kept with the version"
          invalid={!!messagesFor(errors, 'note')}
          error={messagesFor(errors, 'note')}
        >
          <Input aria-label="Note" value={note} onChange={(e) => setNote(e.currentTarget.value)} />
        </Field>
      </div>
      {messagesFor(errors, 'base_version') && (
        <ErrorView title="Not saved" error={messagesFor(errors, 'base_version')} />
      )}
      {failure !== undefined && (
        <ErrorView
          title={failure instanceof RuleSetError && failure.status === 409 ? 'Changed by someone else' : 'Not saved'}
          error={failure}
        />
      )}
      <Stack gap={1}>
        <Button onClick={save} disabled={busy}>
          {set ? 'Save new version' : 'Create'}
        </Button>
        <Button variant="secondary" onClick={check} disabled={busy}>
          Check
        </Button>
        <Button variant="secondary" fill="text" onClick={onCancel}>
          Cancel
        </Button>
      </Stack>
      {hosts && (
        <div data-testid={testIds.rules.preview}>
          <h4>Would apply to {hosts.length === 1 ? '1 known host' : `${hosts.length} known hosts`}</h4>
          <HostList hosts={hosts} />
        </div>
      )}
    </div>
  );
}

const ROLLOUT: Record<Rollout, { text: string; color: BadgeColor; tip: string }> = {
  applied: { text: 'applied', color: 'green', tip: 'The agent applied the offer with this version' },
  applying: { text: 'applying', color: 'blue', tip: 'Offered; the agent has not reported it applied yet' },
  failed: { text: 'refused', color: 'red', tip: 'The agent refused the offer and keeps its running rules' },
  not_offered: { text: 'not offered yet', color: 'orange', tip: 'The collector has not offered this version yet' },
  offer_failed: { text: 'not composable', color: 'red', tip: "The collector could not compose this host's rule sets" },
  unmanaged: { text: 'unmanaged', color: 'purple', tip: 'No agent of this host has connected over OpAMP' },
};

function RolloutCell({ h }: { h: RuleSetHost }) {
  if (!h.rollout) {
    return null;
  }
  const r = ROLLOUT[h.rollout];
  return (
    <span title={r.tip}>
      <Badge text={r.text} color={r.color} />
      {h.apply_error ? ` ${h.apply_error}` : ''}
    </span>
  );
}

/** "Rolled out on 3 of 4, refused on 1." */
function rolloutSummary(hosts: RuleSetHost[]): string {
  const count = (r: Rollout) => hosts.filter((h) => h.rollout === r).length;
  const refused = count('failed') + count('offer_failed');
  return `Rolled out on ${count('applied')} of ${hosts.length}${refused > 0 ? `, refused on ${refused}` : ''}.`;
}

function HostList({ hosts }: { hosts: RuleSetHost[] }) {
  const withRollout = hosts.some((h) => h.rollout);
  const columns = useMemo<Array<Column<RuleSetHost>>>(
    () => [
      { id: 'host_name', header: 'Host' },
      { id: 'status', header: 'Status', cell: ({ row }) => <StatusBadge value={row.original.status} /> },
      {
        id: 'platform',
        header: 'Platform',
        cell: ({ row }) => [row.original.platform, row.original.arch].filter(Boolean).join('/') || '—',
      },
      { id: 'last_seen', header: 'Last seen', cell: ({ row }) => ago(row.original.last_seen) },
      ...(withRollout
        ? [
            {
              id: 'rollout',
              header: 'This version',
              cell: ({ row }: { row: { original: RuleSetHost } }) => <RolloutCell h={row.original} />,
            },
          ]
        : []),
    ],
    [withRollout]
  );
  if (hosts.length === 0) {
    return <div>No known host matches.</div>;
  }
  return <InteractiveTable columns={columns} data={hosts} getRowId={(h) => h.host_name} />;
}

/** One set: its current version, what changed in each version, and the hosts it applies to. */
export function RuleSetDetail({
  id,
  onEdit,
  onBack,
  onChanged,
}: {
  id: number;
  onEdit: (rs: RuleSet) => void;
  onBack: () => void;
  onChanged: () => void;
}) {
  const s = useStyles2(getStyles);
  const versions = useAsyncRetry(() => rulesApi.versions(id), [id]);
  const hosts = useAsyncRetry(() => rulesApi.hosts(id), [id]);
  const [diffOf, setDiffOf] = useState<number>();
  const [failure, setFailure] = useState<unknown>();
  const current = versions.value?.versions[0];

  if (versions.error) {
    return <ErrorView title="Could not load the rule set" error={versions.error} onRetry={versions.retry} />;
  }
  if (!current) {
    return <Loading what="the rule set" />;
  }
  const toggle = () => {
    setFailure(undefined);
    rulesApi.setEnabled(id, !current.enabled, current.version).then(() => {
      versions.retry();
      hosts.retry();
      onChanged();
    }, setFailure);
  };
  return (
    <Stack direction="column" gap={1}>
      <div>
        <Button variant="secondary" fill="text" icon="arrow-left" onClick={onBack}>
          All rule sets
        </Button>
      </div>
      <h3>
        {current.name} <EnabledBadge enabled={current.enabled} />
      </h3>
      <div className={s.note}>
        Applies to {scopeText(current)}. Version {current.version}, saved by {current.author}{' '}
        <span title={fmtTime(current.created_at)}>{ago(current.created_at)}</span>
        {current.note ? ` — ${current.note}` : ''}.
      </div>
      {canEditRules() && (
        <Stack gap={1}>
          <Button icon="pen" onClick={() => onEdit(current)}>
            Edit
          </Button>
          {current.enabled ? (
            <ConfirmButton confirmText="Yes, disable" confirmVariant="destructive" onConfirm={toggle}>
              Disable
            </ConfirmButton>
          ) : (
            <Button variant="secondary" onClick={toggle}>
              Enable
            </Button>
          )}
        </Stack>
      )}
      {failure !== undefined && <ErrorView title="Not saved" error={failure} />}
      <pre className={s.code} data-testid={testIds.rules.current}>
        {current.rules}
      </pre>

      <h4>Versions</h4>
      <div data-testid={testIds.rules.versions}>
        {versions.value!.versions.map((v) => (
          <div key={v.version} className={s.version}>
            <span>
              v{v.version} by {v.author} <span title={fmtTime(v.created_at)}>{ago(v.created_at)}</span>
              {!v.enabled && ' (disabled)'}
              {v.note ? ` — ${v.note}` : ''}
            </span>{' '}
            {v.version > 1 && (
              <Button size="sm" variant="secondary" fill="text" onClick={() => setDiffOf(v.version)}>
                Diff with v{v.version - 1}
              </Button>
            )}
          </div>
        ))}
      </div>
      {diffOf !== undefined && <DiffView id={id} to={diffOf} />}

      <h4>Hosts</h4>
      <div data-testid={testIds.rules.hosts}>
        {hosts.error ? (
          <ErrorView title="Could not load the hosts" error={hosts.error} onRetry={hosts.retry} />
        ) : !hosts.value ? (
          <Loading what="hosts" />
        ) : (
          <>
            <div className={s.note}>
              {hosts.value.enabled
                ? `Applies to ${hosts.value.hosts.length} known host${hosts.value.hosts.length === 1 ? '' : 's'}.`
                : `Disabled: no host gets it. Enabled, it would apply to ${hosts.value.hosts.length} known host${
                    hosts.value.hosts.length === 1 ? '' : 's'
                  }.`}{' '}
              {hosts.value.hosts.some((h) => h.rollout) && rolloutSummary(hosts.value.hosts)}
            </div>
            <HostList hosts={hosts.value.hosts} />
          </>
        )}
      </div>
    </Stack>
  );
}

/** A version against the one before: changed fields, then the rules line by line. */
function DiffView({ id, to }: { id: number; to: number }) {
  const s = useStyles2(getStyles);
  const diff = useAsyncRetry<RuleSetDiff>(() => rulesApi.diff(id, to - 1, to), [id, to]);
  if (diff.error) {
    return <ErrorView title="Could not load the diff" error={diff.error} onRetry={diff.retry} />;
  }
  if (!diff.value) {
    return <Loading what="the diff" />;
  }
  const d = diff.value;
  return (
    <div data-testid={testIds.rules.diff}>
      <h4>
        v{d.from?.version ?? 0} → v{d.to.version}
      </h4>
      {d.changes.map((c) => (
        <div key={c.field}>
          {c.field}: {c.from || '—'} → {c.to || '—'}
        </div>
      ))}
      <pre className={s.code}>
        {d.lines.map((l, i) => (
          <div key={i} className={cx(l.op === '+' && s.added, l.op === '-' && s.removed)}>
            {l.op} {l.text}
          </div>
        ))}
      </pre>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  note: css({ color: theme.colors.text.secondary }),
  code: css({ fontFamily: theme.typography.fontFamilyMonospace, fontSize: theme.typography.bodySmall.fontSize }),
  preLine: css({ whiteSpace: 'pre-line' }),
  added: css({ background: theme.colors.success.transparent }),
  removed: css({ background: theme.colors.error.transparent }),
  version: css({ padding: theme.spacing(0.25, 0) }),
  linkButton: css({
    background: 'none',
    border: 'none',
    padding: 0,
    color: theme.colors.text.link,
    cursor: 'pointer',
  }),
});

export default Rules;
