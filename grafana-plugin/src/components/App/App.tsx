import React from 'react';
import { Navigate, Route, Routes } from 'react-router-dom';
import { AppRootProps } from '@grafana/data';

import { ROUTES } from '../../constants';

const Live = React.lazy(() => import('../../pages/Live'));
const Alerts = React.lazy(() => import('../../pages/Alerts'));
const Hosts = React.lazy(() => import('../../pages/Hosts'));
const Audit = React.lazy(() => import('../../pages/Audit'));
const Rules = React.lazy(() => import('../../pages/Rules'));

function App(_: AppRootProps) {
  return (
    <Routes>
      <Route path={ROUTES.Live} element={<Live />} />
      <Route path={ROUTES.Alerts} element={<Alerts />} />
      <Route path={ROUTES.Hosts} element={<Hosts />} />
      <Route path={ROUTES.Audit} element={<Audit />} />
      <Route path={ROUTES.Rules} element={<Rules />} />
      <Route path="*" element={<Navigate to={ROUTES.Live} replace />} />
    </Routes>
  );
}

export default App;
