export const testIds = {
  appConfig: {
    container: 'data-testid ac-container',
    toggle: 'data-testid ac-toggle',
  },
  live: {
    table: 'data-testid live-table',
    pause: 'data-testid live-pause',
    resume: 'data-testid live-resume',
    counts: 'data-testid live-counts',
    state: 'data-testid live-state',
  },
  alerts: {
    table: 'data-testid alerts-table',
    row: 'data-testid alerts-row',
    drawer: 'data-testid alerts-drawer',
    loadMore: 'data-testid alerts-load-more',
  },
  hosts: {
    table: 'data-testid hosts-table',
    refused: 'data-testid hosts-refused',
  },
  triage: {
    panel: 'data-testid triage-panel',
    badge: 'data-testid triage-badge',
    history: 'data-testid triage-history',
    bulk: 'data-testid triage-bulk',
  },
  rules: {
    table: 'data-testid rules-table',
    editor: 'data-testid rules-editor',
    preview: 'data-testid rules-preview',
    current: 'data-testid rules-current',
    versions: 'data-testid rules-versions',
    diff: 'data-testid rules-diff',
    hosts: 'data-testid rules-hosts',
    field: (name: string) => `data-testid rules-field-${name}`,
  },
  audit: {
    status: 'data-testid audit-status',
    entries: 'data-testid audit-entries',
  },
};
