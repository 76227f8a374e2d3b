import { DataSourceInstanceSettings } from '@grafana/data';

import { DataSource } from './datasource';
import { TripWireOptions } from './types';

const replace = jest.fn((v: string) => v.replace('$host', 'web-01,db-01'));
jest.mock('@grafana/runtime', () => ({
  ...jest.requireActual('@grafana/runtime'),
  getTemplateSrv: () => ({ replace }),
}));

describe('TripWire DataSource', () => {
  const ds = new DataSource({ uid: 'tw', jsonData: {} } as DataSourceInstanceSettings<TripWireOptions>);

  it('expands template variables in filters as comma lists', () => {
    const q = ds.applyTemplateVariables({ refId: 'A', queryType: 'counts', host: '$host', groupBy: 'host' }, {});
    expect(q.host).toBe('web-01,db-01');
    expect(q.groupBy).toBe('host');
    expect(replace).toHaveBeenCalledWith('$host', {}, 'csv');
  });

  it('defaults to trips over time by severity', () => {
    expect(ds.getDefaultQuery({} as never)).toEqual({ queryType: 'counts', groupBy: 'severity' });
  });

  it('skips hidden queries', () => {
    expect(ds.filterQuery({ refId: 'A', hide: true })).toBe(false);
    expect(ds.filterQuery({ refId: 'A' })).toBe(true);
  });
});
