import React, { useEffect } from 'react';
import { MemoryRouter, useLocation } from 'react-router-dom';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';

import { PageTimeRangePicker, useUrlTimeRange } from './TimeRange';

const probe = { search: '' };
function Page() {
  const time = useUrlTimeRange();
  const loc = useLocation();
  useEffect(() => {
    probe.search = loc.search;
  });
  return <PageTimeRangePicker {...time} />;
}

describe("Grafana's time range picker on a page", () => {
  it('shows the URL range and writes moves back to the URL', async () => {
    render(
      <MemoryRouter initialEntries={['/alerts?host=web-01&from=1764000000000&to=1764003600000']}>
        <Page />
      </MemoryRouter>
    );
    fireEvent.click(screen.getByLabelText(/Move time range backwards/i));
    await waitFor(() => expect(new URLSearchParams(probe.search).get('from')).toBe(String(1764000000000 - 1800e3)));
    const p = new URLSearchParams(probe.search);
    expect(p.get('to')).toBe(String(1764003600000 - 1800e3));
    expect(p.get('host')).toBe('web-01');
  });
});
