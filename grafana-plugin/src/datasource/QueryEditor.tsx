import React, { ChangeEvent } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineFieldRow, Input, RadioButtonGroup, Select } from '@grafana/ui';

import { DataSource } from './datasource';
import { GroupBy, QueryType, SEVERITIES, STATES, TripWireOptions, TripWireQuery, TYPES } from './types';

type Props = QueryEditorProps<DataSource, TripWireQuery, TripWireOptions>;

const QUERY_TYPES: Array<SelectableValue<QueryType>> = [
  { label: 'Trips over time', value: 'counts', description: 'Counts per interval; works with alert rules' },
  { label: 'Alerts', value: 'alerts', description: 'Alert rows as logs or a table' },
  { label: 'Hosts', value: 'hosts', description: 'Hosts with their status' },
  { label: 'Host offline', value: 'host_offline', description: 'One 0/1 value per host, for alert rules' },
];
const GROUP_BY: Array<SelectableValue<GroupBy>> = [
  { label: 'None', value: '' },
  { label: 'Type', value: 'type' },
  { label: 'Severity', value: 'severity' },
  { label: 'Host', value: 'host' },
  { label: 'Rule', value: 'rule' },
];
const FORMATS: Array<SelectableValue<'logs' | 'table'>> = [
  { label: 'Logs', value: 'logs' },
  { label: 'Table', value: 'table' },
];
const opts = (values: readonly string[]) => values.map((v) => ({ label: v, value: v }));

export function QueryEditor({ query, onChange, onRunQuery }: Props) {
  const update = (patch: Partial<TripWireQuery>) => {
    onChange({ ...query, ...patch });
    onRunQuery();
  };
  const text = (key: 'host' | 'rule' | 'text') => ({
    value: query[key] ?? '',
    onChange: (e: ChangeEvent<HTMLInputElement>) => onChange({ ...query, [key]: e.target.value }),
    onBlur: onRunQuery,
  });
  const queryType = query.queryType ?? 'counts';
  const filters = queryType === 'alerts' || queryType === 'counts';

  return (
    <>
      <InlineFieldRow>
        <InlineField label="Query" labelWidth={12}>
          <Select
            inputId="tw-query-type"
            width={24}
            options={QUERY_TYPES}
            value={queryType}
            onChange={(v) => update({ queryType: v.value })}
          />
        </InlineField>
        {queryType === 'counts' && (
          <InlineField label="Group by" labelWidth={12}>
            <Select
              width={16}
              options={GROUP_BY}
              value={query.groupBy ?? ''}
              onChange={(v) => update({ groupBy: v.value })}
            />
          </InlineField>
        )}
        {queryType === 'alerts' && (
          <InlineField label="Format" labelWidth={10}>
            <RadioButtonGroup
              options={FORMATS}
              value={query.format ?? 'logs'}
              onChange={(v) => update({ format: v })}
            />
          </InlineField>
        )}
      </InlineFieldRow>
      {filters && (
        <InlineFieldRow>
          <InlineField label="Host" labelWidth={12} tooltip="Host names, comma separated; template variables allowed">
            <Input width={20} placeholder="any" {...text('host')} />
          </InlineField>
          <InlineField label="Type" labelWidth={8}>
            <Select
              width={16}
              isClearable
              options={opts(TYPES)}
              value={query.type || null}
              onChange={(v) => update({ type: v?.value ?? '' })}
            />
          </InlineField>
          <InlineField label="Severity" labelWidth={10}>
            <Select
              width={16}
              isClearable
              options={opts(SEVERITIES)}
              value={query.severity || null}
              onChange={(v) => update({ severity: v?.value ?? '' })}
            />
          </InlineField>
          <InlineField label="Rule" labelWidth={8}>
            <Input width={20} placeholder="any" {...text('rule')} />
          </InlineField>
          <InlineField label="State" labelWidth={8} tooltip="Triage state; OPEN leaves acknowledged trips out">
            <Select
              width={18}
              isClearable
              options={opts(STATES)}
              value={query.state || null}
              onChange={(v) => update({ state: v?.value ?? '' })}
            />
          </InlineField>
          <InlineField label="Search" labelWidth={10}>
            <Input width={24} placeholder="text in summary or event" {...text('text')} />
          </InlineField>
        </InlineFieldRow>
      )}
    </>
  );
}
