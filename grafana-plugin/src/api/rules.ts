import { lastValueFrom } from 'rxjs';
import { config, getBackendSrv } from '@grafana/runtime';

import { ApiError, datasourceUid } from './client';
import type { RuleScope } from './contract.gen';

/** One version of a central rule set (pkg/plugin/rules_store.go). */
export interface RuleSet {
  id: number;
  name: string;
  version: number;
  scope: RuleScope;
  selector?: Record<string, string>;
  host_name?: string;
  enabled: boolean;
  /** YAML list in the agent's rules: schema; empty in lists. */
  rules: string;
  author: string;
  note: string;
  created_at: string;
}

/** The body of a create, an update (with base_version) or a check. */
export interface RuleSetEdit {
  name?: string;
  base_version?: number;
  scope: RuleScope;
  selector?: Record<string, string>;
  host_name?: string;
  enabled?: boolean;
  rules: string;
  note?: string;
}

/** One problem with one field of an edit; rules problems carry the YAML line and key. */
export interface FieldError {
  field: string;
  line?: number;
  key?: string;
  message: string;
}

/** How far a set's current version got on a host (pkg/plugin/rules_store.go). */
export type Rollout = 'unmanaged' | 'offer_failed' | 'not_offered' | 'applying' | 'applied' | 'failed';

/** A known host a rule set applies to; saved sets say how far their current version got on it. */
export interface RuleSetHost {
  host_name: string;
  status: string;
  platform?: string;
  arch?: string;
  last_seen: string;
  rollout?: Rollout;
  apply_error?: string;
  applied_at?: string;
}

export interface DiffLine {
  op: ' ' | '-' | '+';
  text: string;
}

export interface RuleSetDiff {
  from: RuleSet | null;
  to: RuleSet;
  changes: Array<{ field: string; from: string; to: string }>;
  lines: DiffLine[];
}

/** A refused edit: the server's message and every field at fault. */
export class RuleSetError extends ApiError {
  constructor(
    message: string,
    status: number | undefined,
    public fields: FieldError[]
  ) {
    super(message, status);
  }
}

/** Whether the signed-in user may change rule sets: the backend answers 403 to anyone else. */
export function canEditRules(): boolean {
  const role = config.bootData?.user?.orgRole;
  return role === 'Editor' || role === 'Admin';
}

async function call<T>(method: 'GET' | 'POST' | 'PUT', path: string, data?: unknown, params?: Record<string, string>) {
  const uid = await datasourceUid();
  try {
    const resp = await lastValueFrom(
      getBackendSrv().fetch<T>({
        url: `/api/datasources/uid/${uid}/resources/api/v1/${path}`,
        method,
        data,
        params,
        showErrorAlert: false,
      })
    );
    return resp.data;
  } catch (e: unknown) {
    const err = e as {
      status?: number;
      data?: { error?: string; message?: string; fields?: FieldError[] };
      message?: string;
    };
    const message = err.data?.error ?? err.data?.message ?? err.message ?? 'request failed';
    throw new RuleSetError(message, err.status, err.data?.fields ?? []);
  }
}

export const rulesApi = {
  /** Every set's current version without its rules; with host, only the sets that take in that host. */
  list: (host?: string) => call<{ rule_sets: RuleSet[] }>('GET', 'rules', undefined, host ? { host } : undefined),
  get: (id: number, version?: number) =>
    call<RuleSet>('GET', `rules/${id}`, undefined, version ? { version: String(version) } : undefined),
  /** A new set at version 1, as the signed-in user (Editor or Admin). */
  create: (e: RuleSetEdit) => call<RuleSet>('POST', 'rules', e),
  /** A new version made from e.base_version; 409 when the set moved on since. */
  update: (id: number, e: RuleSetEdit) => call<RuleSet>('PUT', `rules/${id}`, e),
  setEnabled: (id: number, enabled: boolean, baseVersion: number) =>
    call<RuleSet>('POST', `rules/${id}/${enabled ? 'enable' : 'disable'}`, { base_version: baseVersion }),
  /** Validates an edit (of set id, or a new set) and lists the hosts it would apply to; saves nothing. */
  check: (e: RuleSetEdit, id?: number) =>
    call<{ errors: FieldError[]; hosts: RuleSetHost[] }>('POST', 'rules/check', e, id ? { id: String(id) } : undefined),
  versions: (id: number) => call<{ versions: RuleSet[] }>('GET', `rules/${id}/versions`),
  /** from/to default to the current version against the one before. */
  diff: (id: number, from?: number, to?: number) => {
    const params: Record<string, string> = {};
    if (from) {
      params.from = String(from);
    }
    if (to) {
      params.to = String(to);
    }
    return call<RuleSetDiff>('GET', `rules/${id}/diff`, undefined, params);
  },
  hosts: (id: number) => call<{ enabled: boolean; hosts: RuleSetHost[] }>('GET', `rules/${id}/hosts`),
};
