import { lastValueFrom } from 'rxjs';
import { config, getBackendSrv } from '@grafana/runtime';

import { ApiError, datasourceUid } from './client';
import type { AlertRef, AlertTriage, BulkTriageResult, TriageChange, TriageState } from './types';

/** Triage states in the order the filters offer them (pkg/plugin/triage.go). */
export const TRIAGE_STATES: TriageState[] = ['OPEN', 'ACKNOWLEDGED'];

/** Whether the signed-in user may change triage: the backend answers 403 to anyone else. */
export function canTriage(): boolean {
  const role = config.bootData?.user?.orgRole;
  return role === 'Editor' || role === 'Admin';
}

/** The signed-in Grafana user's login, for "assign to me". */
export function currentLogin(): string {
  return config.bootData?.user?.login ?? '';
}

async function call(method: 'GET' | 'POST', id: string, host: string | undefined, data?: TriageChange) {
  const uid = await datasourceUid();
  try {
    const resp = await lastValueFrom(
      getBackendSrv().fetch<AlertTriage>({
        url: `/api/datasources/uid/${uid}/resources/api/v1/alerts/${encodeURIComponent(id)}/triage`,
        method,
        params: host ? { host } : {},
        data,
        showErrorAlert: false,
      })
    );
    return resp.data;
  } catch (e: unknown) {
    const err = e as { status?: number; data?: { error?: string; message?: string }; message?: string };
    throw new ApiError(err.data?.error ?? err.data?.message ?? err.message ?? 'request failed', err.status);
  }
}

async function bulk(alerts: AlertRef[], change: TriageChange): Promise<BulkTriageResult> {
  const uid = await datasourceUid();
  try {
    const resp = await lastValueFrom(
      getBackendSrv().fetch<BulkTriageResult>({
        url: `/api/datasources/uid/${uid}/resources/api/v1/alerts/triage`,
        method: 'POST',
        data: { alerts, ...change },
        showErrorAlert: false,
      })
    );
    return resp.data;
  } catch (e: unknown) {
    const err = e as { status?: number; data?: { error?: string; message?: string }; message?: string };
    throw new ApiError(err.data?.error ?? err.data?.message ?? err.message ?? 'request failed', err.status);
  }
}

/** How many alerts one bulk change may name (pkg/plugin/triage.go maxBulk). */
export const MAX_BULK = 500;

export const triageApi = {
  /** The alert's triage and its history. */
  get: (id: string, host?: string) => call('GET', id, host),
  /** Acknowledge, reopen, assign or annotate, as the signed-in user (Editor or Admin). */
  change: (id: string, host: string | undefined, change: TriageChange) => call('POST', id, host, change),
  /** One change for many alerts, in one transaction; `missing` lists those no stored alert matched. */
  changeMany: bulk,
};
