/**
 * The provisioned dashboards, datasource, alert rules and app settings under
 * ../dashboards parse, and every query in them goes to the TripWire
 * datasource with a query the backend understands.
 */
import fs from 'fs';
import path from 'path';
import { parse } from 'yaml';

import appPlugin from './plugin.json';
import dsPlugin from './datasource/plugin.json';

const root = path.resolve(__dirname, '../../dashboards');
const read = (p: string) => fs.readFileSync(path.join(root, p), 'utf8');
const yaml = (p: string) => parse(read(p));

const QUERY_TYPES = ['alerts', 'counts', 'hosts', 'host_offline', 'host_health'];
// pkg/plugin/health.go
const HOST_METRICS = ['offline', 'degraded', 'cert_days_left', 'delivery_lag_seconds', 'loss_events'];
const GROUP_BY = ['', 'type', 'severity', 'host', 'rule'];

function checkModel(model: Record<string, unknown>, where: string) {
  expect({ where, queryType: QUERY_TYPES.includes(String(model.queryType)) }).toEqual({ where, queryType: true });
  if (model.queryType === 'host_health') {
    expect({ where, metric: HOST_METRICS.includes(String(model.metric)) }).toEqual({ where, metric: true });
  }
  if (model.groupBy !== undefined) {
    expect(GROUP_BY).toContain(model.groupBy);
  }
  if (model.severity !== undefined) {
    expect(['INFO', 'WARN', 'CRITICAL']).toContain(model.severity);
  }
  if (model.state !== undefined) {
    expect(['OPEN', 'ACKNOWLEDGED']).toContain(model.state);
  }
  if (model.type !== undefined) {
    expect(['file', 'process', 'network', 'agent', 'audit']).toContain(model.type);
  }
}

describe('provisioning', () => {
  const ds = yaml('provisioning/datasources/tripwire.yaml');
  const uid = ds.datasources[0].uid;

  it('provisions the nested datasource with the password kept secret', () => {
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources).toHaveLength(1);
    expect(ds.datasources[0].type).toBe(dsPlugin.id);
    expect(ds.datasources[0].type).toBe('tripwiresec-tripwire-datasource');
    expect(uid).toBe('tripwire');
    expect(ds.datasources[0].jsonData.password).toBeUndefined();
    expect(ds.datasources[0].secureJsonData.password).toBeDefined();
    expect(ds.datasources[0].jsonData.heartbeatSeconds).toBe(30);
  });

  it("gates the app's pages by RBAC actions, not org roles", () => {
    // Grafana shows an include with an action to whoever holds it
    // (pluginaccesscontrol.GetPluginRouteEvaluator): the pages to anyone who
    // may query a datasource, as /api/v1 and the Live channels are.
    for (const inc of appPlugin.includes.filter((i: { type: string }) => i.type === 'page')) {
      const page = inc as { name: string; action?: string };
      expect({ page: page.name, action: page.action }).toEqual({
        page: page.name,
        action: page.name === 'Configuration' ? 'plugins:write' : 'datasources:query',
      });
    }
  });

  it('enables the app', () => {
    const apps = yaml('provisioning/plugins/tripwire.yaml');
    expect(apps.apps[0].type).toBe(appPlugin.id);
    expect(apps.apps[0].disabled).toBe(false);
  });

  it('ships the overview dashboard with the app, every panel on the chosen TripWire datasource', () => {
    const include = appPlugin.includes.find((i: { type: string }) => i.type === 'dashboard') as { path: string };
    expect(include.path).toBe('dashboards/tripwire-overview.json');
    const dash = JSON.parse(fs.readFileSync(path.join(__dirname, include.path), 'utf8'));
    // No provisioning of its own: Grafana imports an app's dashboards.
    expect(fs.existsSync(path.join(root, 'provisioning/dashboards'))).toBe(false);
    const [dsVar, hostVar] = dash.templating.list;
    expect(dsVar).toMatchObject({ type: 'datasource', name: 'ds', query: dsPlugin.id });
    // A pick list from the datasource's metricFindQuery, not a text box.
    expect(hostVar).toMatchObject({
      type: 'query',
      name: 'host',
      query: { query: 'hosts' },
      multi: true,
      includeAll: true,
    });
    expect(hostVar.datasource).toEqual({ type: dsPlugin.id, uid: '${ds}' });
    const dsRef = { type: dsPlugin.id, uid: '${ds}' };
    expect(dash.title).toBe('TripWire overview');
    expect(dash.uid).toBe('tripwire-overview');
    const titles = dash.panels.map((p: { title: string }) => p.title);
    expect(titles).toEqual(
      expect.arrayContaining(['Trips by severity', 'Trips by type', 'Top hosts', 'Top rules', 'Live feed', 'Hosts'])
    );
    const ids = new Set<number>();
    for (const panel of dash.panels) {
      expect(ids.has(panel.id)).toBe(false);
      ids.add(panel.id);
      expect(panel.datasource).toEqual(dsRef);
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const t of panel.targets) {
        expect(t.datasource).toEqual(dsRef);
        checkModel(t, `${panel.title}/${t.refId}`);
      }
    }
    const live = dash.panels.find((p: { title: string }) => p.title === 'Live feed');
    expect(live.targets[0]).toMatchObject({ queryType: 'alerts', format: 'table', live: true });
  });

  it('has the SOC alert rules, each querying the TripWire datasource', () => {
    const rules = yaml('provisioning/alerting/tripwire.yaml');
    expect(rules.apiVersion).toBe(1);
    const all = rules.groups.flatMap((g: { rules: unknown[] }) => g.rules);
    expect(all.map((r: { title: string }) => r.title)).toEqual([
      'TripWire CRITICAL trip',
      'TripWire host offline',
      'TripWire audit chain break',
      'TripWire agent lost events',
      'TripWire host degraded',
      'TripWire agent certificate expires within 30 days',
      'TripWire spool backlog',
    ]);
    for (const rule of all) {
      const refIds = rule.data.map((d: { refId: string }) => d.refId);
      expect(refIds).toContain(rule.condition);
      const queries = rule.data.filter((d: { datasourceUid: string }) => d.datasourceUid !== '__expr__');
      expect(queries.length).toBeGreaterThan(0);
      for (const q of queries) {
        expect(q.datasourceUid).toBe(uid);
        checkModel(q.model, `${rule.title}/${q.refId}`);
      }
      for (const e of rule.data.filter((d: { datasourceUid: string }) => d.datasourceUid === '__expr__')) {
        expect(refIds).toContain(e.model.expression);
      }
      expect(new Set(all.map((r: { uid: string }) => r.uid)).size).toBe(all.length);
    }
    const critical = all[0].data[0].model;
    // Acknowledged trips (triage) do not fire it.
    expect(critical).toMatchObject({ queryType: 'counts', severity: 'CRITICAL', state: 'OPEN', groupBy: 'host' });
    expect(all[1].data[0].model.queryType).toBe('host_offline');
    expect(all[2].data[0].model).toMatchObject({ queryType: 'counts', type: 'audit' });
    const metricOf = (title: string) => all.find((r: { title: string }) => r.title === title).data[0].model.metric;
    expect(metricOf('TripWire agent lost events')).toBe('loss_events');
    expect(metricOf('TripWire host degraded')).toBe('degraded');
    expect(metricOf('TripWire agent certificate expires within 30 days')).toBe('cert_days_left');
    expect(metricOf('TripWire spool backlog')).toBe('delivery_lag_seconds');
    const cert = all.find((r: { uid: string }) => r.uid === 'tripwire-cert-expiry');
    expect(cert.data.find((d: { refId: string }) => d.refId === 'C').model.conditions[0].evaluator).toEqual({
      type: 'lt',
      params: [30],
    });
    for (const rule of all) {
      expect(rule.labels.source).toBe('tripwire');
    }
  });

  it('ships the SOC webhook and its policy disabled, enabled by renaming one file', () => {
    const dir = fs.readdirSync(path.join(root, 'provisioning/alerting'));
    // Grafana loads only .yaml, .yml and .json files from this directory.
    const loaded = dir.filter((f) => /\.(ya?ml|json)$/.test(f));
    expect(loaded).toEqual(['tripwire.yaml']);
    expect(dir).toContain('soc-webhook.yaml.disabled');
    const soc = yaml('provisioning/alerting/soc-webhook.yaml.disabled');
    expect(soc.apiVersion).toBe(1);
    const receiver = soc.contactPoints[0].receivers[0];
    expect(receiver).toMatchObject({ type: 'webhook', settings: { url: '${TRIPWIRE_SOC_WEBHOOK_URL}' } });
    const route = soc.policies[0].routes[0];
    expect(route.receiver).toBe(soc.contactPoints[0].name);
    expect(route.object_matchers).toEqual([['source', '=', 'tripwire']]);
  });
});
