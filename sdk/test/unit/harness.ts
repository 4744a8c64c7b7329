// Test harness: a recording stand-in for the browser's network APIs (fetch, sendBeacon), which
// are platform code, not ours. Everything from src/ runs for real.
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, vi } from 'vitest';
import { Observability, type Options } from '../../src/index';

export interface Envelope {
  sdk: { name: string; version: string };
  sent_at: number;
  session_id: string;
  session_start?: number;
  environment?: string;
  release?: string;
  batch_id?: string;
  dropped?: number;
  context: Record<string, unknown>;
  events: Array<Record<string, any>>;
}

export interface Request {
  via: 'fetch' | 'beacon';
  url: URL;
  keepalive: boolean;
  type: string;
  size: number;
  gzip: boolean;
  body?: Envelope;
}

/** What the fake server answers: a status (with optional headers) or a network failure. */
export type Reply = number | { status: number; headers?: Record<string, string> } | 'network-error';

export class Network {
  requests: Request[] = [];
  replies: Reply[] = [];
  /** What `sendBeacon` returns; `undefined` removes it, like browsers without it. */
  beacon: boolean | undefined = true;
  _decoding: Promise<void>[] = [];

  _record(via: Request['via'], url: string, body: Blob, keepalive: boolean): Request {
    const u = new URL(url, location.href);
    const req: Request = { via, url: u, keepalive, type: body.type, size: body.size, gzip: u.searchParams.get('gzip') === '1' };
    this.requests.push(req);
    this._decoding.push(
      body.arrayBuffer().then((buf) => {
        const bytes = Buffer.from(buf);
        req.body = JSON.parse((req.gzip ? gunzipSync(bytes) : bytes).toString('utf8'));
      }),
    );
    return req;
  }

  /** Bodies of everything sent so far, in order, once decoded. */
  async bodies(): Promise<Envelope[]> {
    await Promise.all(this._decoding);
    return this.requests.map((r) => r.body!);
  }

  /** Every event sent so far, in order. */
  async events(): Promise<Array<Record<string, any>>> {
    return (await this.bodies()).flatMap((b) => b.events);
  }

  install(): void {
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      this._record('fetch', url, init.body as Blob, !!init.keepalive);
      const reply = this.replies.shift() ?? 202;
      if (reply === 'network-error') throw new TypeError('Failed to fetch');
      const { status, headers } = typeof reply === 'number' ? { status: reply, headers: {} } : reply;
      return new Response(JSON.stringify({ accepted: 0, rejected: [] }), { status, headers });
    });
    const beacon = (url: string, body: Blob) => {
      if (!this.beacon) return false;
      this._record('beacon', url, body, true);
      return true;
    };
    Object.defineProperty(navigator, 'sendBeacon', {
      configurable: true,
      get: () => (this.beacon === undefined ? undefined : beacon),
    });
  }
}

export let net: Network;
const live: Observability[] = [];

/** A started SDK with test defaults (no Web Vitals: happy-dom has no performance timeline). */
export function start(options: Partial<Options> = {}): Observability {
  const obs = new Observability({ apiKey: 'test-key', webVitals: false, ...options });
  live.push(obs);
  return obs;
}

/** Let real asynchronous work (gzip, response handling) finish, without moving fake time. */
export async function settle(rounds = 50): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

export function setVisibility(state: 'visible' | 'hidden'): void {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
  document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  vi.setSystemTime(new Date('2025-11-28T00:00:00Z'));
  sessionStorage.clear();
  history.replaceState(null, '', '/');
  document.body.innerHTML = '';
  document.title = 'Test page';
  net = new Network();
  net.install();
});

afterEach(async () => {
  // Finish every instance before the next test, or a late stash would leak into it.
  await Promise.all(live.splice(0).map((obs) => obs.shutdown()));
  sessionStorage.clear();
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
  vi.unstubAllGlobals();
  vi.useRealTimers();
});
