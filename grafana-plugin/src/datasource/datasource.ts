import { CoreApp, DataSourceInstanceSettings, MetricFindValue, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import type { HostList } from '../api/types';
import { DEFAULT_QUERY, TripWireOptions, TripWireQuery } from './types';

const FILTER_KEYS = ['host', 'type', 'severity', 'rule', 'text'] as const;

/**
 * The TripWire datasource: every query runs in the Go backend, so panels,
 * Explore and alert rules see the same frames.
 */
export class DataSource extends DataSourceWithBackend<TripWireQuery, TripWireOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<TripWireOptions>) {
    super(instanceSettings);
  }

  getDefaultQuery(_: CoreApp): Partial<TripWireQuery> {
    return DEFAULT_QUERY;
  }

  /** Multi-value template variables become the comma lists the backend takes. */
  applyTemplateVariables(query: TripWireQuery, scopedVars: ScopedVars): TripWireQuery {
    const out: TripWireQuery = { ...query };
    for (const key of FILTER_KEYS) {
      const v = query[key];
      if (v) {
        out[key] = getTemplateSrv().replace(v, scopedVars, 'csv');
      }
    }
    return out;
  }

  /**
   * Values for a query template variable. "hosts" (the default) lists every
   * host that has reported, so a dashboard's host variable is a pick list.
   */
  async metricFindQuery(query: string | { query?: string }): Promise<MetricFindValue[]> {
    const what = (typeof query === 'string' ? query : query?.query)?.trim() || 'hosts';
    if (what !== 'hosts') {
      throw new Error(`unknown variable query "${what}" (want hosts)`);
    }
    const list = await this.getResource<HostList>('api/v1/hosts');
    return list.hosts.map((h) => ({ text: h.host_name, value: h.host_name }));
  }

  filterQuery(query: TripWireQuery): boolean {
    return !query.hide;
  }
}
