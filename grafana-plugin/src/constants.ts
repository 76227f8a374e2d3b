import pluginJson from './plugin.json';

export const PLUGIN_BASE_URL = `/a/${pluginJson.id}`;

/** Plugin id of the nested datasource. */
export const DS_TYPE = 'tripwiresec-tripwire-datasource';

export enum ROUTES {
  Live = 'live',
  Alerts = 'alerts',
  Hosts = 'hosts',
  Audit = 'audit',
  Rules = 'rules',
}
