import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { config } from '@grafana/runtime';

import { HOST_ATTRIBUTE, RULE_SCOPE } from '../api/contract.gen';
import { rulesApi, RuleSetError, type RuleSet } from '../api/rules';
import { host, pending } from '../test/fixtures';
import { Rules } from './Rules';

jest.mock('../api/rules', () => ({
  ...jest.requireActual('../api/rules'),
  rulesApi: {
    list: jest.fn(),
    create: jest.fn(),
    update: jest.fn(),
    setEnabled: jest.fn(),
    check: jest.fn(),
    versions: jest.fn(),
    diff: jest.fn(),
    hosts: jest.fn(),
  },
}));
const api = rulesApi as jest.Mocked<typeof rulesApi>;

const SHADOW = '- name: shadow\n  type: file\n  severity: CRITICAL\n  paths: [/etc/shadow]\n';

const ruleSet = (patch: Partial<RuleSet> = {}): RuleSet => ({
  id: 7,
  name: 'linux-base',
  version: 2,
  scope: RULE_SCOPE.Group,
  selector: { [HOST_ATTRIBUTE.OSType]: 'linux' },
  enabled: true,
  rules: SHADOW,
  author: 'bob',
  note: 'linux only',
  created_at: new Date(Date.now() - 60e3).toISOString(),
  ...patch,
});

const page = (url = '/rules') => (
  <MemoryRouter initialEntries={[url]}>
    <Rules />
  </MemoryRouter>
);

function asRole(role: 'Viewer' | 'Editor' | 'Admin', login = 'ed') {
  const user = config.bootData.user;
  const saved = { role: user.orgRole, login: user.login };
  user.orgRole = role as typeof saved.role;
  user.login = login;
  return () => {
    user.orgRole = saved.role;
    user.login = saved.login;
  };
}

describe('Rules page', () => {
  let restore: () => void;
  beforeEach(() => {
    Object.values(api).forEach((f) => (f as jest.Mock).mockReset());
    restore = asRole('Editor');
  });
  afterEach(() => restore());

  it('shows loading, then explains an empty list', async () => {
    api.list.mockReturnValueOnce(pending());
    const { unmount } = render(page());
    expect(screen.getByText(/Loading rule sets/)).toBeInTheDocument();
    unmount();
    api.list.mockResolvedValue({ rule_sets: [] });
    render(page());
    expect(await screen.findByText(/No central rule set yet/)).toBeInTheDocument();
  });

  it('opens the set of the URL', async () => {
    api.list.mockResolvedValue({ rule_sets: [ruleSet()] });
    api.versions.mockResolvedValue({ versions: [ruleSet()] });
    api.hosts.mockResolvedValue({ enabled: true, hosts: [] });
    render(page('/rules?set=7'));
    expect(await screen.findByTestId('data-testid rules-current')).toHaveTextContent('/etc/shadow');
    expect(api.versions).toHaveBeenCalledWith(7);
  });

  it('lists the sets that take in the host of the URL', async () => {
    api.list.mockResolvedValue({ rule_sets: [ruleSet({ rules: '' })] });
    render(page('/rules?host=web-01'));
    expect(await screen.findByText(/Rule sets that take in host web-01/)).toBeInTheDocument();
    expect(api.list).toHaveBeenCalledWith('web-01');
    api.list.mockResolvedValue({ rule_sets: [] });
    fireEvent.click(screen.getByText('All rule sets'));
    await waitFor(() => expect(api.list).toHaveBeenLastCalledWith(undefined));
    expect(await screen.findByText(/No central rule set yet/)).toBeInTheDocument();
  });

  it('lists sets with their scope and state; a Viewer gets no way to edit', async () => {
    restore();
    restore = asRole('Viewer', 'vic');
    api.list.mockResolvedValue({
      rule_sets: [
        ruleSet(),
        ruleSet({
          id: 8,
          name: 'db1',
          scope: RULE_SCOPE.Host,
          selector: undefined,
          host_name: 'db-01',
          enabled: false,
        }),
        ruleSet({ id: 9, name: 'everyone', scope: RULE_SCOPE.Global, selector: undefined, version: 1 }),
      ],
    });
    render(page());
    const rows = within(await screen.findByTestId('data-testid rules-table')).getAllByRole('row');
    expect(rows).toHaveLength(4);
    expect(within(rows[1]).getByText(`${HOST_ATTRIBUTE.OSType}=linux`)).toBeInTheDocument();
    expect(within(rows[1]).getByText('enabled')).toBeInTheDocument();
    expect(within(rows[2]).getByText('host db-01')).toBeInTheDocument();
    expect(within(rows[2]).getByText('disabled')).toBeInTheDocument();
    expect(within(rows[3]).getByText('every host')).toBeInTheDocument();
    expect(screen.queryByText('New rule set')).not.toBeInTheDocument();

    api.versions.mockResolvedValue({ versions: [ruleSet()] });
    api.hosts.mockResolvedValue({ enabled: true, hosts: [] });
    fireEvent.click(within(rows[1]).getByText('linux-base'));
    expect(await screen.findByTestId('data-testid rules-current')).toHaveTextContent('/etc/shadow');
    expect(screen.queryByText('Edit')).not.toBeInTheDocument();
    expect(screen.queryByText('Disable')).not.toBeInTheDocument();
  });

  it('shows each refused field on its field, rule problems with line and key', async () => {
    api.list.mockResolvedValue({ rule_sets: [] });
    render(page());
    fireEvent.click(await screen.findByText('New rule set'));
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'bad name' } });
    fireEvent.change(screen.getByLabelText('Rules'), { target: { value: SHADOW.replace('CRITICAL', 'LOUD') } });
    api.create.mockRejectedValue(
      new RuleSetError('refused', 400, [
        { field: 'name', message: "want 1 to 128 letters, digits, '.', '_' or '-'" },
        {
          field: 'rules',
          line: 3,
          key: 'rules[0].severity',
          message: 'bad severity "LOUD" (want INFO, WARN or CRITICAL)',
        },
      ])
    );
    fireEvent.click(screen.getByText('Create'));
    const rulesField = screen.getByTestId('data-testid rules-field-rules');
    expect(
      await within(rulesField).findByText(/line 3: rules\[0\]\.severity: bad severity "LOUD"/)
    ).toBeInTheDocument();
    expect(
      within(screen.getByTestId('data-testid rules-field-name')).getByText(/want 1 to 128 letters/)
    ).toBeInTheDocument();
    expect(within(screen.getByTestId('data-testid rules-field-note')).queryByText(/want/)).not.toBeInTheDocument();
    expect(api.create).toHaveBeenCalledWith({
      name: 'bad name',
      scope: RULE_SCOPE.Global,
      rules: SHADOW.replace('CRITICAL', 'LOUD'),
      enabled: true,
      note: '',
    });
  });

  it('checks a group edit and previews the hosts it would apply to, saving nothing', async () => {
    api.list.mockResolvedValue({ rule_sets: [] });
    render(page());
    fireEvent.click(await screen.findByText('New rule set'));
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'macs' } });
    fireEvent.click(screen.getByLabelText('Host group'));
    fireEvent.change(screen.getByLabelText('Value 1'), { target: { value: 'darwin' } });
    api.check.mockResolvedValue({
      errors: [],
      hosts: [host('mbp-07', { platform: 'darwin', arch: 'arm64' }), host('mbp-08', { platform: 'darwin' })],
    });
    fireEvent.click(screen.getByText('Check'));
    const preview = await screen.findByTestId('data-testid rules-preview');
    expect(within(preview).getByText('Would apply to 2 known hosts')).toBeInTheDocument();
    expect(within(preview).getByText('mbp-07')).toBeInTheDocument();
    expect(within(preview).getByText('darwin/arm64')).toBeInTheDocument();
    expect(api.check).toHaveBeenCalledWith(
      expect.objectContaining({
        name: 'macs',
        scope: RULE_SCOPE.Group,
        selector: { [HOST_ATTRIBUTE.OSType]: 'darwin' },
      })
    );
    expect(api.create).not.toHaveBeenCalled();
  });

  it('edits into a new version from the version shown, then opens it', async () => {
    const v2 = ruleSet();
    api.list.mockResolvedValue({ rule_sets: [v2] });
    api.versions.mockResolvedValue({
      versions: [v2, ruleSet({ version: 1, scope: RULE_SCOPE.Global, selector: undefined })],
    });
    api.hosts.mockResolvedValue({ enabled: true, hosts: [host('web-01')] });
    render(page());
    fireEvent.click(await screen.findByText('linux-base'));
    fireEvent.click(await screen.findByText('Edit'));
    expect(screen.queryByLabelText('Name')).not.toBeInTheDocument(); // a name never changes
    const more = SHADOW + '- name: nc\n  type: process\n  severity: WARN\n  names: [nc]\n';
    fireEvent.change(screen.getByLabelText('Rules'), { target: { value: more } });
    fireEvent.change(screen.getByLabelText('Note'), { target: { value: 'add nc' } });
    // A check of an existing set names it, so its own rule names are no clash.
    api.check.mockResolvedValue({
      errors: [{ field: 'rules', line: 5, key: 'rules[1].name', message: 'rule "nc" is also in rule set "tools"' }],
      hosts: [host('web-01')],
    });
    fireEvent.click(screen.getByText('Check'));
    expect(
      await within(screen.getByTestId('data-testid rules-field-rules')).findByText(
        'line 5: rules[1].name: rule "nc" is also in rule set "tools"'
      )
    ).toBeInTheDocument();
    expect(api.check).toHaveBeenCalledWith(expect.objectContaining({ base_version: 2, rules: more }), 7);
    const v3 = ruleSet({ version: 3, rules: more, author: 'ed', note: 'add nc' });
    api.update.mockResolvedValue(v3);
    api.versions.mockResolvedValue({ versions: [v3, v2] });
    fireEvent.click(screen.getByText('Save new version'));
    await waitFor(() =>
      expect(api.update).toHaveBeenCalledWith(7, {
        base_version: 2,
        scope: RULE_SCOPE.Group,
        selector: { [HOST_ATTRIBUTE.OSType]: 'linux' },
        rules: more,
        enabled: true,
        note: 'add nc',
      })
    );
    expect(await screen.findByText(/Version 3, saved by ed/)).toBeInTheDocument();
    // Cancelling an edit returns to the set.
    fireEvent.click(screen.getByText('Edit'));
    fireEvent.click(screen.getByText('Cancel'));
    expect(await screen.findByText(/Version 3, saved by ed/)).toBeInTheDocument();
    fireEvent.click(screen.getByText('All rule sets'));
    expect(await screen.findByTestId('data-testid rules-table')).toBeInTheDocument();
  });

  it('says when someone else saved first', async () => {
    api.list.mockResolvedValue({ rule_sets: [ruleSet()] });
    api.versions.mockResolvedValue({ versions: [ruleSet()] });
    api.hosts.mockResolvedValue({ enabled: true, hosts: [] });
    render(page());
    fireEvent.click(await screen.findByText('linux-base'));
    fireEvent.click(await screen.findByText('Edit'));
    api.update.mockRejectedValue(
      new RuleSetError(
        'rule set "linux-base" is at version 3, the change was made from version 2; reload and edit again',
        409,
        []
      )
    );
    fireEvent.click(screen.getByText('Save new version'));
    expect(await screen.findByText('Changed by someone else')).toBeInTheDocument();
    expect(screen.getByText(/is at version 3/)).toBeInTheDocument();
  });

  it('shows a version against the one before, the hosts, and disables', async () => {
    const v2 = ruleSet();
    const v1 = ruleSet({ version: 1, scope: RULE_SCOPE.Global, selector: undefined, author: 'alice', note: 'first' });
    api.list.mockResolvedValue({ rule_sets: [v2] });
    api.versions.mockResolvedValue({ versions: [v2, v1] });
    api.hosts.mockResolvedValue({
      enabled: true,
      hosts: [
        { ...host('web-01'), rollout: 'applied' },
        { ...host('db-01'), rollout: 'failed', apply_error: 'rules[0].paths[0]: unreadable path' },
      ],
    });
    api.diff.mockResolvedValue({
      from: v1,
      to: v2,
      changes: [{ field: 'selector', from: '', to: `${HOST_ATTRIBUTE.OSType}=linux` }],
      lines: [
        { op: ' ', text: '- name: shadow' },
        { op: '-', text: '  severity: WARN' },
        { op: '+', text: '  severity: CRITICAL' },
      ],
    });
    render(page());
    fireEvent.click(await screen.findByText('linux-base'));
    const versions = await screen.findByTestId('data-testid rules-versions');
    expect(within(versions).getByText(/v1 by alice/)).toBeInTheDocument();
    fireEvent.click(within(versions).getByText('Diff with v1'));
    const diff = await screen.findByTestId('data-testid rules-diff');
    expect(api.diff).toHaveBeenCalledWith(7, 1, 2);
    expect(within(diff).getByText('v1 → v2')).toBeInTheDocument();
    expect(within(diff).getByText(`selector: — → ${HOST_ATTRIBUTE.OSType}=linux`)).toBeInTheDocument();
    expect(within(diff).getByText('- severity: WARN')).toBeInTheDocument();
    expect(within(diff).getByText('+ severity: CRITICAL')).toBeInTheDocument();

    const hosts = await screen.findByTestId('data-testid rules-hosts');
    expect(
      await within(hosts).findByText(/Applies to 2 known hosts. Rolled out on 1 of 2, refused on 1./)
    ).toBeInTheDocument();
    const rows = within(hosts).getAllByRole('row');
    expect(within(rows[1]).getByText('applied')).toBeInTheDocument();
    expect(within(rows[2]).getByText('refused')).toBeInTheDocument();
    expect(within(rows[2]).getByText(/unreadable path/)).toBeInTheDocument();

    api.setEnabled.mockResolvedValue(ruleSet({ version: 3, enabled: false }));
    api.versions.mockResolvedValue({ versions: [ruleSet({ version: 3, enabled: false, author: 'ed' }), v2, v1] });
    api.hosts.mockResolvedValue({ enabled: false, hosts: [host('web-01'), host('db-01')] });
    fireEvent.click(screen.getByText('Disable'));
    fireEvent.click(await screen.findByText('Yes, disable'));
    await waitFor(() => expect(api.setEnabled).toHaveBeenCalledWith(7, false, 2));
    expect(await screen.findByText(/Disabled: no host gets it/)).toBeInTheDocument();
    expect(screen.getByText('Enable')).toBeInTheDocument();
  });
});
