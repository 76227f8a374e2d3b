import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { AppRootProps, PluginType } from '@grafana/data';
import { render, screen } from '@testing-library/react';

import App from './App';

jest.mock('../../api/client', () => ({
  ...jest.requireActual('../../api/client'),
  datasourceUid: jest.fn(() => new Promise(() => {})),
  api: { hosts: jest.fn(() => new Promise(() => {})), liveChannel: jest.fn(() => new Promise(() => {})) },
}));

jest.mock('../../api/rules', () => ({
  ...jest.requireActual('../../api/rules'),
  rulesApi: { list: jest.fn(() => new Promise(() => {})) },
}));

const props = {
  basename: 'a/tripwiresec-tripwire-app',
  meta: { id: 'tripwiresec-tripwire-app', name: 'TripWire', type: PluginType.app, enabled: true, jsonData: {} },
  query: {},
  path: '',
  onNavChanged: jest.fn(),
} as unknown as AppRootProps;

// Lazy pages load slowly on a busy CI machine.
jest.setTimeout(30000);

describe('App', () => {
  it('opens on the Live page', async () => {
    render(
      <MemoryRouter>
        <React.Suspense fallback="…">
          <App {...props} />
        </React.Suspense>
      </MemoryRouter>
    );
    expect(await screen.findByText(/Loading the live feed/, {}, { timeout: 25000 })).toBeInTheDocument();
  });

  it('routes to Hosts', async () => {
    render(
      <MemoryRouter initialEntries={['/hosts']}>
        <React.Suspense fallback="…">
          <App {...props} />
        </React.Suspense>
      </MemoryRouter>
    );
    expect(await screen.findByText(/Loading hosts/, {}, { timeout: 25000 })).toBeInTheDocument();
  });

  it('routes to Rules', async () => {
    render(
      <MemoryRouter initialEntries={['/rules']}>
        <React.Suspense fallback="…">
          <App {...props} />
        </React.Suspense>
      </MemoryRouter>
    );
    expect(await screen.findByText(/Loading rule sets/, {}, { timeout: 25000 })).toBeInTheDocument();
  });
});
