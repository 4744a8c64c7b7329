import { noop } from './util';

/**
 * Browsers allow at most 64 KiB of keepalive request bodies in flight per page, counting
 * `fetch(..., {keepalive: true})` and `sendBeacon` together; past that they fail the request.
 */
export const KEEPALIVE_BUDGET = 65536;
// A beacon's completion cannot be observed, so its bytes count as in flight for this long.
const BEACON_HOLD_MS = 10000;
const MAX_BACKOFF_MS = 60000;

/** What the queue should do with a batch after a send attempt. */
export const enum Outcome {
  Sent,
  /** Keep the batch and try again once `_retryAt` has passed. */
  Retry,
  /** The server _refused the batch for good (400/401/403/413/415): resending cannot help. */
  Reject,
  /** Retries are exhausted: the batch is given up and counted as dropped. */
  GiveUp,
}

/** Compress with the platform's gzip; callers only use it where `CompressionStream` exists. */
export function gzip(text: string): Promise<Blob> {
  return new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'))).blob();
}

/** Seconds or an HTTP date, as `Retry-After` allows; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number): number | null {
  if (!value) return null;
  const ms = /^\s*\d+\s*$/.test(value) ? +value * 1000 : Date.parse(value) - now;
  return isNaN(ms) ? null : Math.max(0, ms);
}

/**
 * Sends encoded batches to `url` (which carries the write key, since beacons cannot set headers)
 * and owns the state every request shares: keepalive bytes in flight, backoff, and whether the
 * server has _refused the key.
 */
export class Transport {
  _inflight = 0;
  _attempts = 0;
  /** No regular send before this time (ms since the epoch), set by failures and `Retry-After`. */
  _retryAt = 0;
  /** Set after 401/403: the key or origin is wrong, and resending would only add load. */
  _refused = false;

  _url: string;
  _maxRetries: number;
  _log: (...a: unknown[]) => void;

  constructor(url: string, maxRetries: number, log: (...a: unknown[]) => void) {
    this._url = url;
    this._maxRetries = maxRetries;
    this._log = log;
  }

  _target(gzipped: boolean): string {
    return gzipped ? this._url + '&gzip=1' : this._url;
  }

  /** Whether `size` more keepalive bytes fit next to those in flight. */
  _fits(size: number): boolean {
    return this._inflight + size <= KEEPALIVE_BUDGET;
  }

  _hold(size: number): () => void {
    this._inflight += size;
    let held = true;
    return () => {
      if (held) this._inflight -= size;
      held = false;
    };
  }

  /** A regular send: keepalive when it fits the budget, so it survives the page going away. */
  async _post(body: Blob | string, gzipped: boolean): Promise<Outcome> {
    const blob = new Blob([body], { type: 'text/plain' });
    const keepalive = this._fits(blob.size);
    const release = keepalive ? this._hold(blob.size) : noop;
    let status = 0;
    let retryAfter: string | null = null;
    try {
      const res = await fetch(this._target(gzipped), { method: 'POST', body: blob, keepalive, credentials: 'omit' });
      status = res.status;
      retryAfter = res.headers.get('Retry-After');
    } catch (e) {
      this._log(e);
    } finally {
      release();
    }
    if (status >= 200 && status < 300) {
      this._attempts = 0;
      return Outcome.Sent;
    }
    this._log(status);
    if (status && status < 500 && status !== 429 && status !== 408) {
      // 400/413/415: this batch will never be accepted. 401/403: nothing from this page will.
      if (status === 401 || status === 403) this._refused = true;
      return Outcome.Reject;
    }
    const now = Date.now();
    const attempt = ++this._attempts;
    const wait = retryAfterMs(retryAfter, now) ?? Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    this._retryAt = now + wait;
    if (attempt > this._maxRetries) {
      this._attempts = 0;
      return Outcome.GiveUp;
    }
    return Outcome.Retry;
  }

  /**
   * A send while the page is being hidden or unloaded, synchronous because the page may be gone
   * after this task: `sendBeacon`, or a keepalive `fetch` when the beacon is _refused (over quota,
   * or missing). Returns whether the browser took the request.
   */
  _sendNow(text: string): boolean {
    // text/plain is CORS-safelisted: beacons with other Blob types are _refused cross-origin.
    const blob = new Blob([text], { type: 'text/plain' });
    if (!this._fits(blob.size)) return false;
    const url = this._target(false);
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) {
        setTimeout(this._hold(blob.size), BEACON_HOLD_MS);
        return true;
      }
    } catch (e) {
      this._log(e);
    }
    try {
      const release = this._hold(blob.size);
      fetch(url, { method: 'POST', body: blob, keepalive: true, credentials: 'omit' }).then(release, release);
      return true;
    } catch (e) {
      this._log(e);
      return false;
    }
  }
}
