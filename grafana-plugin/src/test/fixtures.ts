import type { Alert, ChainStatus, Host } from '../api/types';
import { AGENT_STATUS } from '../api/contract.gen';

export const alert = (i: number, patch: Partial<Alert> = {}): Alert => ({
  alert_id: `0190a000-0000-7000-8000-${String(i).padStart(12, '0')}`,
  event_time: new Date(Date.UTC(2026, 10, 26, 12, 0, i)).toISOString(),
  received_at: new Date(Date.UTC(2026, 10, 26, 12, 0, i)).toISOString(),
  host_name: 'web-01',
  event_name: 'tripwire.file.access',
  tripwire_type: 'file',
  rule_name: 'shadow-read',
  severity: 'CRITICAL',
  seq: i,
  summary: `cat read /etc/shadow #${i}`,
  ...patch,
});

export const host = (name: string, patch: Partial<Host> = {}): Host => ({
  host_name: name,
  first_seen: new Date(Date.now() - 86400e3).toISOString(),
  last_seen: new Date(Date.now() - 5e3).toISOString(),
  status: AGENT_STATUS.Online,
  agent_version: '0.1.0',
  platform: 'linux',
  arch: 'amd64',
  watchers: 'file=fanotify,process=ebpf',
  alerts_24h: 3,
  ...patch,
});

export const intactChain = (hostName: string): ChainStatus => ({
  host: hostName,
  intact: true,
  entries: 3,
  first_seq: 1,
  verified_up_to_seq: 3,
  head_seq: 3,
  breaks: [],
  recorded_breaks: [],
});

/** A promise that never settles: the loading state stays on screen. */
export const pending = <T>() => new Promise<T>(() => {});
