import CopyWebpackPlugin from 'copy-webpack-plugin';
import type { Configuration } from 'webpack';

import grafanaConfig, { type Env } from './.config/webpack/webpack.config';

// The scaffold copies only the app's own logos; the nested datasource's
// plugin.json points at datasource/img/logo.svg, which Grafana serves from
// the nested plugin's directory.
const config = async (env: Env): Promise<Configuration> => {
  const base = await grafanaConfig(env);
  base.plugins = [
    ...(base.plugins ?? []),
    new CopyWebpackPlugin({ patterns: [{ from: 'datasource/img', to: 'datasource/img' }] }),
  ];
  return base;
};

export default config;
