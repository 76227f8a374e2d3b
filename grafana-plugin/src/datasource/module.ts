import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import { DataSource } from './datasource';
import { QueryEditor } from './QueryEditor';
import { TripWireOptions, TripWireQuery } from './types';

export const plugin = new DataSourcePlugin<DataSource, TripWireQuery, TripWireOptions>(DataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
