import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { render, screen } from '@testing-library/react';
import { PluginType } from '@grafana/data';

import AppConfig, { AppConfigProps } from './AppConfig';
import { testIds } from 'components/testIds';

describe('AppConfig', () => {
  const props = (enabled: boolean) =>
    ({
      plugin: {
        meta: { id: 'tripwiresec-tripwire-app', name: 'TripWire', type: PluginType.app, enabled, jsonData: {} },
      },
      query: {},
    }) as unknown as AppConfigProps;

  it('points to the datasource for the connection', () => {
    render(
      <MemoryRouter>
        <AppConfig {...props(false)} />
      </MemoryRouter>
    );
    expect(screen.getByText('TripWire datasource')).toHaveAttribute(
      'href',
      '/connections/datasources/new?type=tripwiresec-tripwire-datasource'
    );
    expect(screen.getByTestId(testIds.appConfig.toggle)).toHaveTextContent('Enable TripWire');
  });

  it('offers to disable an enabled app', () => {
    render(
      <MemoryRouter>
        <AppConfig {...props(true)} />
      </MemoryRouter>
    );
    expect(screen.getByTestId(testIds.appConfig.toggle)).toHaveTextContent('Disable TripWire');
  });
});
