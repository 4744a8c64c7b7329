// Test page for @plausible-analytics/tracker, bundled unmodified from sdk/node_modules by esbuild.
// init() reads window.OBSD_TEST.plausible; window.obsdTest lets the driver track and navigate.
import { init, track } from '@plausible-analytics/tracker';

const cfg = (window.OBSD_TEST && window.OBSD_TEST.plausible) || {};
init({ domain: cfg.domain, endpoint: cfg.endpoint, logging: true });

window.obsdTest = {
  // track(name, {props, revenue, interactive, url}); resolves with what the tracker's callback got.
  track(name, opts = {}) {
    return new Promise((resolve) => {
      track(name, Object.assign({}, opts, {
        callback(result) {
          resolve(result === undefined ? { ignored: true } : result.status ? { status: result.status }
            : { error: String(result.error) });
        },
      }));
    });
  },
  // A single-page-app navigation, as a router does it.
  navigate(path) {
    history.pushState({}, '', path);
  },
};
