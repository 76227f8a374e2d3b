import { CoreApp, DataSourceInstanceSettings, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

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

  filterQuery(query: TripWireQuery): boolean {
    return !query.hide;
  }
}
