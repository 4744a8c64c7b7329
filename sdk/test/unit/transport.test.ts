import { describe, expect, test, vi } from 'vitest';
import { VERSION } from '../../src/index';
import { KEEPALIVE_BUDGET } from '../../src/transport';
import { net, settle, setVisibility, start } from './harness';
import pkg from '../../package.json';

/** Advance fake time in steps, letting real async work (responses, gzip) run in between. */
async function runFor(ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    vi.advanceTimersByTime(step);
    await settle(10);
  }
}

const quiet = { pageviews: false, clicks: false, scroll: false, errors: false } as const;

describe('batching and flush triggers', () => {
  test('events wait for the flush interval, then go in one batch', async () => {
    const obs = start({ ...quiet, flushInterval: 5000 });
    obs.track('a');
    obs.track('b');
    vi.advanceTimersByTime(4999);
    await settle();
    expect(net.requests).toHaveLength(0);
    vi.advanceTimersByTime(1);
    await settle();
    expect((await net.events()).map((e) => e.name)).toEqual(['a', 'b']);
  });

  test('reaching batchSize sends at once, in batches of batchSize', async () => {
    const obs = start({ ...quiet, batchSize: 3 });
    for (let i = 0; i < 7; i++) obs.track('e' + i);
    await settle();
    const bodies = await net.bodies();
    // The third batch is what was left when the second was answered.
    expect(bodies.map((b) => b.events.length)).toEqual([3, 3, 1]);
    expect((await net.events()).map((e) => e.name)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6']);
  });

  test('flush() sends what is queued and resolves after the response', async () => {
    const obs = start(quiet);
    obs.track('now');
    await obs.flush();
    expect(net.requests).toHaveLength(1);
    expect(net.requests[0].via).toBe('fetch');
  });

  test('the envelope follows the wire contract', async () => {
    const obs = start({ ...quiet, environment: 'staging' });
    obs.track('purchase', { amount: 99.99 });
    await obs.flush();
    const [req] = net.requests;
    expect(req.url.pathname).toBe('/v1/events');
    expect(req.url.searchParams.get('key')).toBe('test-key');
    expect(req.type).toBe('text/plain');
    const body = (await net.bodies())[0];
    expect(body.sdk).toEqual({ name: 'obsd-js', version: VERSION });
    expect(body.sent_at).toBe(Date.now());
    expect(body.session_id).toMatch(/^[0-9a-f]{16}$/);
    expect(body.environment).toBe('staging');
    expect(body).not.toHaveProperty('dropped');
    expect(body.context).toMatchObject({ url: location.href, title: 'Test page', language: navigator.language });
    // The server's context fields are strings and pairs of numbers: absent, never null.
    for (const v of Object.values(body.context)) expect(v).not.toBeNull();
    expect(body.context.screen).toHaveLength(2);
    expect(body.context.viewport).toEqual([innerWidth, innerHeight]);
    const [ev] = body.events;
    expect(ev).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      type: 'custom',
      ts: Date.now(),
      url: location.href,
      name: 'purchase',
      props: { amount: 99.99 },
    });
  });

  test('VERSION matches package.json', () => {
    expect(VERSION).toBe(pkg.version);
  });

  test('a relative or absolute endpoint can be configured, keeping the key in the URL', async () => {
    const obs = start({ ...quiet, endpoint: 'https://collect.example/e?x=1' });
    obs.track('a');
    await obs.flush();
    expect(net.requests[0].url.href).toBe('https://collect.example/e?x=1&key=test-key');
  });
});

describe('compression', () => {
  test('batches of 1 KiB or more are gzipped and marked gzip=1', async () => {
    const obs = start(quiet);
    for (let i = 0; i < 10; i++) obs.track('item_viewed', { sku: 'sku-' + i, description: 'x'.repeat(50) });
    await obs.flush();
    const [req] = net.requests;
    expect(req.gzip).toBe(true);
    const body = (await net.bodies())[0];
    expect(body.events).toHaveLength(10);
    expect(req.size).toBeLessThan(JSON.stringify(body).length / 2);
  });

  test('small batches are not worth compressing', async () => {
    const obs = start(quiet);
    obs.track('tiny');
    await obs.flush();
    expect(net.requests[0].gzip).toBe(false);
  });

  test('compression: false sends plain JSON', async () => {
    const obs = start({ ...quiet, compression: false });
    for (let i = 0; i < 10; i++) obs.track('item_viewed', { description: 'x'.repeat(100) });
    await obs.flush();
    expect(net.requests[0].gzip).toBe(false);
  });

  test('without CompressionStream, batches go uncompressed', async () => {
    vi.stubGlobal('CompressionStream', undefined);
    const obs = start(quiet);
    for (let i = 0; i < 10; i++) obs.track('item_viewed', { description: 'x'.repeat(100) });
    await obs.flush();
    expect(net.requests[0].gzip).toBe(false);
    expect(await net.events()).toHaveLength(10);
  });
});

describe('retries', () => {
  test('429 with Retry-After: nothing is sent before it has passed, then the same batch is resent', async () => {
    net.replies.push({ status: 429, headers: { 'Retry-After': '7' } });
    const obs = start(quiet);
    obs.track('a');
    await obs.flush();
    obs.track('b');
    await obs.flush();
    vi.advanceTimersByTime(6999);
    await settle();
    expect(net.requests).toHaveLength(1);
    vi.advanceTimersByTime(1);
    await settle();
    expect(net.requests).toHaveLength(3);
    const bodies = await net.bodies();
    // The resend is the very same batch (same id, same events); what came later goes in a batch of its own.
    expect(bodies[1].batch_id).toBe(bodies[0].batch_id);
    expect(bodies[1].events).toEqual(bodies[0].events);
    expect(bodies[2].events.map((e) => e.name)).toEqual(['b']);
    expect(bodies[2].batch_id).not.toBe(bodies[0].batch_id);
  });

  test('503 with an HTTP-date Retry-After is honoured', async () => {
    net.replies.push({ status: 503, headers: { 'Retry-After': new Date(Date.now() + 30000).toUTCString() } });
    const obs = start(quiet);
    obs.track('a');
    await obs.flush();
    vi.advanceTimersByTime(29000);
    await settle();
    expect(net.requests).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    await settle();
    expect(net.requests).toHaveLength(2);
  });

  test('network errors back off exponentially', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(1); // no jitter: waits of exactly 1 s, 2 s, 4 s
    net.replies.push('network-error', 'network-error', 'network-error');
    const obs = start(quiet);
    obs.track('a');
    await obs.flush();
    const times: number[] = [];
    for (let t = 0; t < 8000; t += 100) {
      vi.advanceTimersByTime(100);
      await settle(10);
      if (net.requests.length > times.length + 1) times.push(t + 100);
    }
    expect(times).toEqual([1000, 3000, 7000]);
    expect(await net.events()).toHaveLength(4);
  });

  test.each([400, 401, 403, 413, 415])('%i is not retried', async (status) => {
    net.replies.push(status);
    const obs = start(quiet);
    obs.track('a');
    await obs.flush();
    vi.advanceTimersByTime(120000);
    await settle();
    expect(net.requests).toHaveLength(1);
  });

  test('after 401 (wrong key) the page stops sending; after 400 it goes on', async () => {
    net.replies.push(401);
    const refused = start(quiet);
    refused.track('a');
    await refused.flush();
    refused.track('b');
    await refused.flush();
    expect(net.requests).toHaveLength(1);

    net.replies.push(400);
    const ok = start(quiet);
    ok.track('a');
    await ok.flush();
    ok.track('b');
    await ok.flush();
    expect(net.requests).toHaveLength(3);
  });

  test('a batch is given up after maxRetries and reported as dropped', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    net.replies.push(500, 500, 500);
    const obs = start({ ...quiet, maxRetries: 2 });
    obs.track('doomed');
    obs.track('doomed');
    await obs.flush();
    await runFor(60000);
    expect(net.requests).toHaveLength(3);
    obs.track('next');
    await obs.flush();
    const last = (await net.bodies()).at(-1)!;
    expect(last.events.map((e) => e.name)).toEqual(['next']);
    expect(last.dropped).toBe(2);
  });
});

describe('batch ids', () => {
  test('every batch has its own UUID batch_id', async () => {
    const obs = start({ ...quiet, batchSize: 1 });
    obs.track('a');
    obs.track('b');
    await obs.flush();
    const [x, y] = await net.bodies();
    expect(x.batch_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(y.batch_id).not.toBe(x.batch_id);
  });

  test.each(['network-error', 500, 503] as const)('after %s the batch is resent with the same id and events', async (reply) => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    net.replies.push(reply);
    const obs = start(quiet);
    obs.track('a');
    obs.track('b');
    await obs.flush();
    obs.track('c'); // arrives while the batch waits for its resend: it must not join it
    await runFor(3000);
    const bodies = await net.bodies();
    expect(bodies[1].batch_id).toBe(bodies[0].batch_id);
    expect(bodies[1].events.map((e) => e.id)).toEqual(bodies[0].events.map((e) => e.id));
    expect(bodies[2].events.map((e) => e.name)).toEqual(['c']);
  });

  test('a resend caught by the page hiding goes by beacon with its id', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    net.replies.push('network-error');
    const obs = start(quiet);
    for (let i = 0; i < 10; i++) obs.track('big', { description: 'x'.repeat(100) });
    await obs.flush(); // gzipped, lost
    vi.advanceTimersByTime(500); // the backoff ends: the resend starts compressing again…
    setVisibility('hidden'); // …and the page hides before it is done
    await settle();
    const bodies = await net.bodies();
    expect(net.requests.map((r) => r.via)).toEqual(['fetch', 'beacon']);
    expect(bodies[1].batch_id).toBe(bodies[0].batch_id);
    expect(bodies[1].events.map((e) => e.id)).toEqual(bodies[0].events.map((e) => e.id));
  });

  test('a batch waiting for its resend keeps its id across pages of the tab', async () => {
    net.replies.push({ status: 503, headers: { 'Retry-After': '30' } });
    const first = start(quiet);
    first.track('a');
    await first.flush();
    setVisibility('hidden'); // still in backoff: nothing may go now, so it is stashed
    expect(net.requests).toHaveLength(1);
    await first.shutdown();
    vi.advanceTimersByTime(30000);
    setVisibility('visible');
    const next = start(quiet);
    await settle();
    await next.flush();
    const bodies = await net.bodies();
    expect(bodies).toHaveLength(2);
    expect(bodies[1].batch_id).toBe(bodies[0].batch_id);
    expect(bodies[1].events).toEqual(bodies[0].events);
  });

  test('release and environment go with every batch', async () => {
    const obs = start({ ...quiet, release: 'shop@2.4.1', environment: 'staging' });
    obs.track('a');
    await obs.flush();
    const [b] = await net.bodies();
    expect([b.release, b.environment]).toEqual(['shop@2.4.1', 'staging']);
  });
});

describe('bounded queue', () => {
  test('when full it drops the oldest events and reports how many', async () => {
    net.replies.push({ status: 503, headers: { 'Retry-After': '10' } });
    const obs = start({ ...quiet, maxQueueSize: 5, batchSize: 100 });
    obs.track('e0');
    await obs.flush(); // fails: e0 waits to be resent as it was (it may already be stored)
    for (let i = 1; i < 9; i++) obs.track('e' + i);
    vi.advanceTimersByTime(10000);
    await settle();
    const bodies = await net.bodies();
    expect(bodies).toHaveLength(3);
    expect(bodies[1].events.map((e) => e.name)).toEqual(['e0']);
    expect(bodies[2].events.map((e) => e.name)).toEqual(['e4', 'e5', 'e6', 'e7', 'e8']);
    expect(bodies[2].dropped).toBe(3);
    obs.track('after');
    await obs.flush();
    expect((await net.bodies())[3]).not.toHaveProperty('dropped');
  });
});

describe('page hide', () => {
  test('visibilitychange to hidden sends the queue by beacon, as text/plain', async () => {
    const obs = start(quiet);
    obs.track('last');
    setVisibility('hidden');
    expect(net.requests).toHaveLength(1); // synchronously, before the page can go away
    const [req] = net.requests;
    expect(req.via).toBe('beacon');
    expect(req.type).toBe('text/plain');
    expect(req.url.searchParams.get('key')).toBe('test-key');
    expect((await net.events()).map((e) => e.name)).toEqual(['last']);
    void obs;
  });

  test('pagehide sends too, and nothing is sent twice', async () => {
    const obs = start(quiet);
    obs.track('last');
    window.dispatchEvent(new Event('pagehide'));
    setVisibility('hidden');
    await settle();
    expect(await net.events()).toHaveLength(1);
    void obs;
  });

  test('when sendBeacon refuses (over quota), a keepalive fetch carries the events', async () => {
    net.beacon = false;
    const obs = start(quiet);
    obs.track('last');
    setVisibility('hidden');
    expect(net.requests).toHaveLength(1);
    expect(net.requests[0]).toMatchObject({ via: 'fetch', keepalive: true, type: 'text/plain' });
    expect(await net.events()).toHaveLength(1);
    void obs;
  });

  test('without sendBeacon at all, a keepalive fetch is used', async () => {
    net.beacon = undefined;
    const obs = start(quiet);
    obs.track('last');
    setVisibility('hidden');
    expect(net.requests[0]).toMatchObject({ via: 'fetch', keepalive: true });
  });

  test('a batch still being gzipped when the page hides is sent uncompressed, once', async () => {
    const obs = start(quiet);
    for (let i = 0; i < 10; i++) obs.track('big', { description: 'x'.repeat(100) });
    const flushing = obs.flush(); // starts gzip, which is asynchronous
    setVisibility('hidden');
    await flushing;
    await settle();
    expect(net.requests).toHaveLength(1);
    expect(net.requests[0]).toMatchObject({ via: 'beacon', gzip: false });
    expect(await net.events()).toHaveLength(10);
  });

  test('the 64 KiB keepalive budget is split into requests that each fit', async () => {
    const obs = start({ ...quiet, batchSize: 1000 });
    for (let i = 0; i < 100; i++) obs.track('big', { blob: 'y'.repeat(2000) });
    setVisibility('hidden');
    const sizes = net.requests.map((r) => r.size);
    expect(sizes.length).toBeGreaterThan(1);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(KEEPALIVE_BUDGET);
    for (const s of sizes) expect(s).toBeLessThanOrEqual(KEEPALIVE_BUDGET);
    // What did not fit waits in sessionStorage for the next page of this tab.
    const sent = (await net.events()).length;
    expect(sent).toBeGreaterThan(20);
    expect(sent).toBeLessThan(100);
    const [, stashed] = JSON.parse(sessionStorage.getItem('obsd_queue')!);
    expect(sent + stashed.length).toBe(100);
  });

  test('in-flight keepalive bytes are released when the request completes', async () => {
    net.beacon = false;
    const obs = start({ ...quiet, batchSize: 1000 });
    for (let i = 0; i < 20; i++) obs.track('big', { blob: 'y'.repeat(3000) });
    setVisibility('hidden'); // ~63 KB by keepalive fetch, in flight until it completes
    expect(net.requests[0].size).toBeGreaterThan(60000);
    setVisibility('visible');
    for (let i = 0; i < 20; i++) obs.track('big', { blob: 'y'.repeat(3000) });
    setVisibility('hidden'); // not even one event fits next to the first
    expect(net.requests).toHaveLength(1);
    await settle(); // the first completes
    setVisibility('visible');
    setVisibility('hidden');
    expect(net.requests).toHaveLength(2);
    expect(await net.events()).toHaveLength(40);
  });

  test('regular sends use keepalive only while the budget allows', async () => {
    const obs = start({ ...quiet, compression: false, batchSize: 1000 });
    for (let i = 0; i < 40; i++) obs.track('big', { blob: 'y'.repeat(2000) });
    await obs.flush();
    obs.track('small');
    await obs.flush();
    expect(net.requests.map((r) => r.keepalive)).toEqual([false, true]);
  });

  test('during backoff the page hide honours Retry-After and stashes the events for the next page', async () => {
    net.replies.push({ status: 503, headers: { 'Retry-After': '60' } });
    const first = start(quiet);
    first.track('a');
    await first.flush();
    first.track('b');
    setVisibility('hidden');
    expect(net.requests).toHaveLength(1);
    await first.shutdown();

    // The next page of this tab (same sessionStorage) sends them.
    vi.advanceTimersByTime(60000);
    setVisibility('visible');
    const next = start(quiet);
    await settle();
    await next.flush();
    const bodies = await net.bodies();
    expect(bodies).toHaveLength(3);
    // The batch that got the 503 goes again with its id; the event queued after it follows.
    expect(bodies[1].batch_id).toBe(bodies[0].batch_id);
    expect(bodies.slice(1).flatMap((b) => b.events.map((e) => e.name))).toEqual(['a', 'b']);
    expect(bodies[2].session_id).toBe(bodies[0].session_id);
    expect(sessionStorage.getItem('obsd_queue')).toBeNull();
  });
});
