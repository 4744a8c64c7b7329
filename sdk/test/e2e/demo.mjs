// Drives obsd's /demo shop in real headless Chromium like a visitor would, then closes the page.
// Prints one JSON report on stdout: every request the SDK made (decoded), the session id, and
// the page's console errors. tests/test_sdk_e2e.py runs this against a real `obsd serve`.
//
//   node test/e2e/demo.mjs http://127.0.0.1:8080
//   CHROMIUM=/path/to/chromium node test/e2e/demo.mjs ...   (default /usr/bin/chromium)
import { chromium } from 'playwright-core';

const base = process.argv[2] || 'http://127.0.0.1:8080';
const SECRETS = { name: 'Jane Tester', email: 'jane.tester@example.com', card: '4242424242424242' };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, locale: 'de-DE', timezoneId: 'Europe/Berlin' });
const requests = [];
const consoleErrors = [];
const log = (...a) => process.stderr.write(a.join(' ') + '\n');

// Playwright sees fetches but not the bodies of Blob uploads, nor beacons sent while a page
// closes; so the page also keeps its own log of how the SDK sent (in localStorage, which the
// context keeps after the page is gone). Whether bodies were gzip shows in the URL (gzip=1),
// and the server answering 202 to such a request proves the body really was gzip.
context.on('request', (req) => {
  const url = new URL(req.url());
  if (url.pathname !== '/v1/events') return;
  const entry = { url: req.url(), method: req.method(), resourceType: req.resourceType(),
    contentType: req.headers()['content-type'] || '', gzip: url.searchParams.get('gzip') === '1', status: null };
  requests.push(entry);
  req.response().then((res) => (entry.status = res ? res.status() : null), () => {});
});
await context.addInitScript(() => {
  const note = (entry) => {
    const log = JSON.parse(localStorage.getItem('obsd_e2e') || '[]');
    log.push({ ...entry, at: Date.now(), visibility: document.visibilityState });
    localStorage.setItem('obsd_e2e', JSON.stringify(log));
  };
  const beacon = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, data) => {
    const ok = beacon(url, data);
    note({ via: 'beacon', url: String(url), bytes: data && data.size, type: data && data.type, ok });
    return ok;
  };
  const fetch = window.fetch.bind(window);
  window.fetch = (url, init = {}) => {
    note({ via: 'fetch', url: String(url), bytes: init.body && init.body.size, keepalive: !!init.keepalive });
    return fetch(url, init);
  };
});

const page = await context.newPage();
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));

const pause = (ms) => page.waitForTimeout(ms);
const step = async (name, fn) => {
  log('e2e:', name);
  await fn();
  await pause(150);
};

await step('open /demo', () => page.goto(base + '/demo', { waitUntil: 'load' }));
await step('to products', () => page.click('#shop-now'));
await step('scroll the products page', async () => {
  await page.mouse.wheel(0, 600);
  await pause(200);
  await page.mouse.wheel(0, 600);
});
await step('add two lamps', async () => {
  await page.click('button[data-sku="lamp-arc"]');
  await page.click('button[data-sku="lamp-desk"]');
});
await step('to cart', () => page.click('nav a[href="/demo/cart"]'));
await step('to checkout', () => page.click('#to-checkout'));
await step('fill and submit the form', async () => {
  await page.fill('input[name=name]', SECRETS.name);
  await page.fill('input[name=email]', SECRETS.email);
  await page.fill('input[name=card]', SECRETS.card);
  await page.click('#pay');
});
await step('trigger the error', () => page.click('#break'));
await step('back to the cart (popstate)', () => page.goBack());
await step('type somewhere (an interaction for INP)', () => page.keyboard.press('Tab'));
// Let the flush timer send a batch (compressed) while the page is alive.
await pause(2600);
await step('one more click, left for the beacon', () => page.click('nav a[href="/demo/products"]'));

const sessionId = await page.evaluate(() => (sessionStorage.getItem('obsd_session') || '').split('.')[0]);
const sdkLoaded = await page.evaluate(() => typeof window.obs === 'object' && typeof window.Observability === 'function');
const closedAt = Date.now();
log('e2e: close the page');
await page.close({ runBeforeUnload: true });
// Requests sent while the page closed land after it is gone; give them time.
await new Promise((r) => setTimeout(r, 1500));
// A same-origin document that does not start the SDK, to read the page's transport log.
const reader = await context.newPage();
await reader.goto(base + '/health');
const transport = await reader.evaluate(() => JSON.parse(localStorage.getItem('obsd_e2e') || '[]'));
await browser.close();

process.stdout.write(JSON.stringify({ sessionId, sdkLoaded, closedAt, secrets: SECRETS, consoleErrors, requests, transport }, null, 1) + '\n');
