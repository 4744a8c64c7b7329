// Runs the real Plausible tracker and Sentry browser SDK against a running `obsd serve`.
//
// Bundles this folder's two entries with esbuild (the clients come unmodified from sdk/node_modules),
// serves them from a small page server as http://shop.test:<port>/ (mapped to 127.0.0.1, so the
// tracker's localhost rule does not apply), drives headless Chromium through the scenarios and
// prints one JSON report on stdout. tests/ingest/test_compat_browser.py checks ClickHouse afterwards.
//
//   SDK_DIR=sdk node tests/ingest/compat/drive.mjs --obsd http://127.0.0.1:8080 --key KEY --sentry-id 42 \
//     --page-port 8765
//
// Stops by itself: a watchdog exits after WATCHDOG_MS whatever happens.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sdkDir = process.env.SDK_DIR || join(here, '..', '..', '..', 'sdk');
const require = createRequire(join(sdkDir, 'package.json'));
const { chromium } = require('playwright-core');
const esbuild = require('esbuild');

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) throw new Error(`--${name} is required`);
  return process.argv[i + 1];
};
const obsd = arg('obsd');
const key = arg('key');
const sentryId = arg('sentry-id');
const WATCHDOG_MS = 100_000;
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';
const watchdog = setTimeout(() => { console.error('drive.mjs: watchdog, giving up'); process.exit(2); }, WATCHDOG_MS);
const log = (...a) => process.stderr.write(a.join(' ') + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// 1. Bundle the clients as they are published.
const out = mkdtempSync(join(tmpdir(), 'obsd-compat-'));
const common = { bundle: true, format: 'iife', target: 'es2020', logLevel: 'warning', absWorkingDir: here,
  nodePaths: [join(sdkDir, 'node_modules')] };
const t0 = Date.now();
await Promise.all([
  esbuild.build({ ...common, entryPoints: [join(here, 'plausible-entry.js')], outfile: join(out, 'plausible-page.js') }),
  esbuild.build({ ...common, entryPoints: [join(here, 'sentry-entry.js')], outfile: join(out, 'sentry-page.js'),
    keepNames: true }),
]);
const report = { buildMs: Date.now() - t0, plausible: {}, sentry: {}, console: [], apiStatuses: [] };

// 2. The site: every /app/* path is the same single-page app; /sentry is the error page.
const plausiblePage = (cfg) => `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script>window.OBSD_TEST = ${JSON.stringify({ plausible: cfg })};</script>
<script src="/plausible-page.js"></script></head>
<body style="height: 4000px"><h1>Shop</h1></body></html>`;
const sentryPage = (cfg) => `<!doctype html><html><head><meta charset="utf-8"><title>Errors</title>
<script src="${obsd}/sdk.js" data-api-key="${key}" data-environment="staging" data-flush-interval="300"></script>
<script>window.OBSD_TEST = ${JSON.stringify({ sentry: cfg })};</script>
<script src="/sentry-page.js"></script></head>
<body><button id="boom">Boom</button><button id="reject">Reject</button></body></html>`;
let pagePort = 0;
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  const host = `http://shop.test:${pagePort}`;
  if (path.endsWith('.js')) {
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    res.end(readFileSync(join(out, path.slice(1))));
  } else if (path.startsWith('/app/')) {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(plausiblePage({ domain: 'shop.test', endpoint: `${obsd}/api/event` }));
  } else if (path === '/sentry') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    const dsn = `${obsd.replace('://', `://${key}@`)}/${sentryId}`;
    res.end(sentryPage({ dsn, release: 'shop@2.3.4', environment: 'staging' }));
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(Number(arg('page-port')), '127.0.0.1', r));
pagePort = server.address().port;
report.site = `http://shop.test:${pagePort}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  timeout: 30_000,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-blink-features=AutomationControlled',
    '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync',
    '--disable-quic', `--host-resolver-rules=MAP shop.test 127.0.0.1`],
});
const newContext = async () => {
  const context = await browser.newContext({ userAgent: UA, viewport: { width: 1280, height: 720 } });
  context.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) report.apiStatuses.push({ path: u.pathname, status: r.status() });
  });
  return context;
};
const watch = (page, label) => {
  page.on('console', (m) => report.console.push({ label, type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => report.console.push({ label, type: 'pageerror', text: e.message }));
};
const apiResponse = (page, pred) => page.waitForResponse((r) => r.url().startsWith(`${obsd}/api/event`) && pred(r),
  { timeout: 15_000 });
const body = (r) => { try { return JSON.parse(r.request().postData() || '{}'); } catch { return {}; } };

try {
  // 3. Plausible: a landing pageview from Google with UTM tags, a SPA navigation, a purchase, leaving.
  {
    log('plausible: landing');
    const context = await newContext();
    const page = await context.newPage();
    watch(page, 'plausible');
    const landing = apiResponse(page, (r) => body(r).n === 'pageview');
    await page.goto(`${report.site}/app/home?utm_source=newsletter&utm_campaign=spring&secret=1`,
      { referer: 'https://www.google.com/' });
    report.plausible.landing = (await landing).status();
    report.plausible.webdriver = await page.evaluate(() => navigator.webdriver);
    await page.mouse.wheel(0, 1500);
    await sleep(600);
    log('plausible: SPA navigation');
    const spa = apiResponse(page, (r) => body(r).n === 'pageview' && body(r).u.includes('/app/pricing'));
    await page.evaluate(() => window.obsdTest.navigate('/app/pricing'));
    report.plausible.spa = (await spa).status();
    log('plausible: purchase');
    report.plausible.purchase = await page.evaluate(() => window.obsdTest.track('Purchase', {
      props: { plan: 'pro', seats: 3 }, revenue: { amount: 15.99, currency: 'EUR' } }));
    await sleep(300);
    log('plausible: leave');
    await page.close({ runBeforeUnload: true });
    await sleep(1500); // the engagement of the page left is sent as it closes
    await context.close();
  }
  // 4. Sentry (with obsd's own SDK on the same page): an uncaught error, a rejection, captureException,
  //    captureMessage, with release and environment.
  {
    log('sentry: errors');
    const context = await newContext();
    const page = await context.newPage();
    watch(page, 'sentry');
    await page.goto(`${report.site}/sentry`, { waitUntil: 'load' });
    await sleep(300);
    await page.click('#boom');
    await page.click('#reject');
    await page.evaluate(() => window.obsdTest.captureException());
    await page.evaluate(() => window.obsdTest.captureMessage('checkout slow', 'warning'));
    report.sentry.flushed = await page.evaluate(() => window.obsdTest.flush(5000));
    await page.evaluate(() => window.obs && window.obs.flush());
    await sleep(500);
    await page.close({ runBeforeUnload: true });
    await sleep(1000);
    await context.close();
  }
} finally {
  await browser.close();
  server.close();
  clearTimeout(watchdog);
}
process.stdout.write(JSON.stringify(report) + '\n');
