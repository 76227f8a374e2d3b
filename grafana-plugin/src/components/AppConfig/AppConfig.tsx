import React from 'react';
import { lastValueFrom } from 'rxjs';
import { AppPluginMeta, PluginConfigPageProps, PluginMeta } from '@grafana/data';
import { getBackendSrv, locationService } from '@grafana/runtime';
import { Alert, Button, Stack } from '@grafana/ui';

import { DS_TYPE } from '../../constants';
import { testIds } from '../testIds';

export interface AppConfigProps extends PluginConfigPageProps<AppPluginMeta<{}>> {}

/**
 * The app itself has no settings: the PostgreSQL connection belongs to the
 * TripWire datasource, so alert rules and dashboards use the same one.
 */
const AppConfig = ({ plugin }: AppConfigProps) => {
  const { enabled } = plugin.meta;

  const toggle = async () => {
    await updatePlugin(plugin.meta.id, { enabled: !enabled, pinned: !enabled, jsonData: {} });
    locationService.reload();
  };

  return (
    <Stack direction="column" gap={2} data-testid={testIds.appConfig.container}>
      <Alert severity="info" title="Connection">
        TripWire reads from the PostgreSQL database the tripwire collector writes to. Configure it in a{' '}
        <a href={`/connections/datasources/new?type=${DS_TYPE}`} style={{ textDecoration: 'underline' }}>
          TripWire datasource
        </a>
        ; the pages use the first one.
      </Alert>
      <div>
        <Button variant={enabled ? 'destructive' : 'primary'} onClick={toggle} data-testid={testIds.appConfig.toggle}>
          {enabled ? 'Disable' : 'Enable'} TripWire
        </Button>
      </div>
    </Stack>
  );
};

export default AppConfig;

async function updatePlugin(pluginId: string, data: Partial<PluginMeta>) {
  const response = getBackendSrv().fetch({ url: `/api/plugins/${pluginId}/settings`, method: 'POST', data });
  return lastValueFrom(response);
}
