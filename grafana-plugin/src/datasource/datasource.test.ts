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

  it('feeds a host variable from the hosts that reported', async () => {
    const getResource = jest
      .spyOn(ds, 'getResource')
      .mockResolvedValue({ hosts: [{ host_name: 'db-01' }, { host_name: 'web-01' }], offline_after_seconds: 90 });
    expect(await ds.metricFindQuery('hosts')).toEqual([
      { text: 'db-01', value: 'db-01' },
      { text: 'web-01', value: 'web-01' },
    ]);
    expect(await ds.metricFindQuery({ query: '' })).toHaveLength(2);
    expect(getResource).toHaveBeenCalledWith('api/v1/hosts');
    await expect(ds.metricFindQuery('rules')).rejects.toThrow('want hosts');
  });
});
