import { afterEach, expect, test, vi } from 'vitest';
import { net } from './harness';

afterEach(async () => {
  await window.obs?.shutdown();
  delete window.obs;
});

/** Run the script-tag entry point as if loaded by `<script src=... data-...>`. */
async function load(src: string, data: Record<string, string>) {
  const script = document.createElement('script');
  script.src = src;
  for (const [k, v] of Object.entries(data)) script.setAttribute('data-' + k, v);
  Object.defineProperty(document, 'currentScript', { configurable: true, get: () => script });
  vi.resetModules();
  await import('../../src/auto');
  Object.defineProperty(document, 'currentScript', { configurable: true, get: () => null });
}

test('the script tag starts window.obs with options from data attributes', async () => {
  await load('https://cdn.example/static/sdk.js', {
    'api-key': 'tag-key',
    'batch-size': '2',
    'web-vitals': 'false',
    pageviews: 'false',
    'require-consent': '',
    environment: 'staging',
  });
  expect(typeof window.Observability).toBe('function');
  const obs = window.obs!;
  obs.track('a');
  obs.track('b');
  await obs.flush();
  expect(net.requests).toHaveLength(0); // data-require-consent with no value means true
  obs.consent('granted');
  await obs.flush();
  const [req] = net.requests;
  // Without data-endpoint, events go to the host the script came from.
  expect(req.url.href).toBe('https://cdn.example/v1/events?key=tag-key');
  const [body] = await net.bodies();
  expect(body.environment).toBe('staging');
  expect(body.events.map((e) => e.name)).toEqual(['a', 'b']);
});

test('data-endpoint is resolved against the page, for first-party proxies', async () => {
  await load('https://cdn.example/sdk.js', { 'api-key': 'k', endpoint: '/o/e', 'web-vitals': 'false', pageviews: 'false' });
  window.obs!.track('a');
  await window.obs!.flush();
  expect(net.requests[0].url.href).toBe(new URL('/o/e?key=k', location.href).href);
});

test('without data-api-key nothing starts, but the class is there for manual use', async () => {
  await load('https://cdn.example/sdk.js', {});
  expect(window.obs).toBeUndefined();
  expect(typeof window.Observability).toBe('function');
});

test('an invalid number option leaves the SDK inert with a console warning', async () => {
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
  await load('https://cdn.example/sdk.js', { 'api-key': 'k', 'batch-size': 'lots', 'web-vitals': 'false' });
  window.obs!.track('a');
  await window.obs!.flush();
  expect(net.requests).toHaveLength(0);
  expect(String(warn.mock.calls[0])).toContain('batchSize must be a number');
});
