import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { Field, FieldSet, Input, SecretInput, Select } from '@grafana/ui';

import { TripWireOptions, TripWireSecureOptions } from './types';

type Props = DataSourcePluginOptionsEditorProps<TripWireOptions, TripWireSecureOptions>;

const SSL_MODES = ['verify-full', 'verify-ca', 'require', 'disable'].map((v) => ({ label: v, value: v }));

/** The PostgreSQL connection the collector writes to; the password goes to secureJsonData. */
export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields, secureJsonData } = options;

  const set = <K extends keyof TripWireOptions>(key: K, value: TripWireOptions[K]) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, [key]: value } });
  const setNumber = (key: 'port' | 'maxConns' | 'heartbeatSeconds') => (e: ChangeEvent<HTMLInputElement>) =>
    set(key, e.target.value === '' ? undefined : Number(e.target.value));

  return (
    <>
      <FieldSet label="PostgreSQL">
        <Field label="Host" required description="Host name or address of the PostgreSQL server">
          <Input
            id="tw-host"
            width={40}
            value={jsonData.host ?? ''}
            placeholder="postgres.example.internal"
            onChange={(e: ChangeEvent<HTMLInputElement>) => set('host', e.target.value)}
          />
        </Field>
        <Field label="Port">
          <Input
            id="tw-port"
            width={12}
            type="number"
            value={jsonData.port ?? ''}
            placeholder="5432"
            onChange={setNumber('port')}
          />
        </Field>
        <Field label="Database">
          <Input
            id="tw-database"
            width={40}
            value={jsonData.database ?? ''}
            placeholder="tripwire"
            onChange={(e: ChangeEvent<HTMLInputElement>) => set('database', e.target.value)}
          />
        </Field>
        <Field label="User" required description="A role with SELECT on the TripWire tables is enough">
          <Input
            id="tw-user"
            width={40}
            value={jsonData.user ?? ''}
            onChange={(e: ChangeEvent<HTMLInputElement>) => set('user', e.target.value)}
          />
        </Field>
        <Field label="Password">
          <SecretInput
            id="tw-password"
            width={40}
            isConfigured={Boolean(secureJsonFields?.password)}
            value={secureJsonData?.password ?? ''}
            onReset={() =>
              onOptionsChange({
                ...options,
                secureJsonFields: { ...secureJsonFields, password: false },
                secureJsonData: { ...secureJsonData, password: '' },
              })
            }
            onChange={(e: ChangeEvent<HTMLInputElement>) =>
              onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, password: e.target.value } })
            }
          />
        </Field>
        <Field label="TLS mode">
          <Select
            inputId="tw-sslmode"
            width={20}
            options={SSL_MODES}
            value={jsonData.sslMode ?? 'verify-full'}
            onChange={(v) => set('sslMode', v.value as TripWireOptions['sslMode'])}
          />
        </Field>
        <Field label="Max connections">
          <Input
            id="tw-maxconns"
            width={12}
            type="number"
            value={jsonData.maxConns ?? ''}
            placeholder="8"
            onChange={setNumber('maxConns')}
          />
        </Field>
      </FieldSet>
      <FieldSet label="Hosts">
        <Field
          label="Agent heartbeat (seconds)"
          description="A host is shown OFFLINE after three heartbeats without news"
        >
          <Input
            id="tw-heartbeat"
            width={12}
            type="number"
            value={jsonData.heartbeatSeconds ?? ''}
            placeholder="30"
            onChange={setNumber('heartbeatSeconds')}
          />
        </Field>
      </FieldSet>
    </>
  );
}
