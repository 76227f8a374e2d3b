// Jest setup provided by Grafana scaffolding
import './.config/jest-setup';

// jsdom has no ResizeObserver; @grafana/ui's Drawer measures itself with one.
if (!global.ResizeObserver) {
  global.ResizeObserver = class ResizeObserver {
    observe() {}
    unobserve() {}
    disconnect() {}
  };
}

// Nor IntersectionObserver, which the Drawer's scroll container uses.
if (!global.IntersectionObserver) {
  global.IntersectionObserver = class IntersectionObserver {
    observe() {}
    unobserve() {}
    disconnect() {}
    takeRecords() {
      return [];
    }
  };
}

// findBy/waitFor wait up to 10 s: the CI machine runs other suites in
// parallel, and the default 1 s fails on load, not on behaviour.
require('@testing-library/react').configure({ asyncUtilTimeout: 10000 });
