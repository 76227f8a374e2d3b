// force timezone to UTC to allow tests to work regardless of local timezone
// generally used by snapshots, but can affect specific tests
process.env.TZ = 'UTC';

const base = require('./.config/jest.config');

module.exports = {
  // Jest configuration provided by Grafana scaffolding
  ...base,
  // Suites share a loaded CI machine: a page test takes seconds there, not
  // milliseconds, so time limits are about load, not behaviour.
  testTimeout: 30000,
  moduleNameMapper: {
    ...base.moduleNameMapper,
    // jsdom would pick yaml's ESM browser build; the CommonJS one is the same parser.
    '^yaml$': '<rootDir>/node_modules/yaml/dist/index.js',
  },
  transform: {
    ...base.transform,
    // d3-color and friends ship ES modules as .mjs (TOOLCHAIN.md, fix 3).
    '^.+\\.mjs$': ['@swc/jest', { jsc: { parser: { syntax: 'ecmascript' } }, module: { type: 'commonjs' } }],
  },
};
