// Test page for @sentry/browser, bundled unmodified from sdk/node_modules by esbuild (names kept, so
// frames carry the functions' names). Sentry.init() reads window.OBSD_TEST.sentry; window.obsdTest
// makes each kind of error the driver asks for.
import * as Sentry from '@sentry/browser';

const cfg = (window.OBSD_TEST && window.OBSD_TEST.sentry) || {};
Sentry.init({ dsn: cfg.dsn, release: cfg.release, environment: cfg.environment });
Sentry.setTag('page', 'compat-test');
Sentry.setUser({ id: 'user-42', email: 'jane@example.com' }); // must never reach obsd's store

function explodeInNamedFunction() {
  const config = undefined;
  return config.featureFlags.enabled; // TypeError, two named calls deep
}
function outerCaller() {
  return explodeInNamedFunction();
}
async function rejectInNamedFunction() {
  throw new Error('payment service unavailable (order 12345)');
}
function captureInNamedFunction() {
  try {
    JSON.parse('{not json');
  } catch (err) {
    Sentry.captureException(err);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('boom').addEventListener('click', function onBoomClick() { outerCaller(); });
  document.getElementById('reject').addEventListener('click', function onRejectClick() { rejectInNamedFunction(); });
});

window.obsdTest = {
  captureException: captureInNamedFunction,
  captureMessage: (text, level) => Sentry.captureMessage(text, level),
  flush: (ms) => Sentry.flush(ms),
};
