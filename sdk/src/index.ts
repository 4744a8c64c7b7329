import { onCLS, onFCP, onINP, onLCP, onTTFB, type Metric } from 'web-vitals';
import { describeClick } from './click';
import { fromErrorEvent, fromRejection, type ErrorInfo } from './errors';
import { Session } from './session';
import { gzip, Outcome, Transport } from './transport';
import { noop, utf8Size, uuid } from './util';

export const VERSION = '0.1.0';

export interface Options {
  /** The project's write key (obsd.toml `[[projects]] write_key`). Required. */
  apiKey: string;
  /** Where events are POSTed; relative URLs resolve against the page. Default `/v1/events`. */
  endpoint?: string;
  /** Sent with every batch, e.g. `production` or `staging`. */
  environment?: string;
  /** The version of the site or app, sent with every batch, e.g. `shop@2.4.1`. */
  release?: string;
  /** Send as soon as this many events are queued. Default 20. */
  batchSize?: number;
  /** Send queued events at least this often, in ms. Default 5000. */
  flushInterval?: number;
  /** Gzip batches of 1 KiB or more where the browser has `CompressionStream`. Default true. */
  compression?: boolean;
  /** Share of sessions recorded, 0 to 1, decided once per session. Default 1. */
  sampleRate?: number;
  /** Log what the SDK does to the console. Default false. */
  debug?: boolean;
  /** Events kept while the server cannot be reached; the oldest go first. Default 1000. */
  maxQueueSize?: number;
  /** Failed sends of one batch before it is given up (and counted as dropped). Default 5. */
  maxRetries?: number;
  /** Record nothing that leaves the page until `consent('granted')`. Default false. */
  requireConsent?: boolean;
  /** Record nothing when the browser sends Do-Not-Track or Global Privacy Control. Default true. */
  respectDoNotTrack?: boolean;
  /** Inactivity, in ms, after which a new session starts. Default 30 minutes. */
  sessionTimeout?: number;
  /** Automatic capture; each defaults to true. */
  pageviews?: boolean;
  clicks?: boolean;
  scroll?: boolean;
  errors?: boolean;
  webVitals?: boolean;
  /** Count a change of `location.hash` as a new page (hash routers). Default false. */
  hashRouting?: boolean;
}

export type Props = Record<string, unknown>;
export type ConsentState = 'granted' | 'denied';

/** One event as it goes on the wire. */
export interface WireEvent {
  id: string;
  type: string;
  ts: number;
  url?: string;
  props?: Props;
  [field: string]: unknown;
}

interface Queued {
  /** The session the event happened in: a batch never mixes sessions. */
  s: string;
  /** When that session began (ms). */
  t?: number;
  e: WireEvent;
}

/**
 * Events sent together. Its id goes out as `batch_id` and stays the same for every resend of these
 * very events (after a 503, a 429 or a lost answer), so the server stores them once.
 */
interface Batch {
  id: string;
  items: Queued[];
  dropped: number;
}

// Below this size gzip saves too little to be worth an asynchronous step.
const MIN_GZIP = 1024;
const STASH = 'obsd_queue';
const MAX_ERRORS = 50;
const MAX_PER_ERROR = 5;

type Resolved = Required<Omit<Options, 'environment' | 'release'>> & { environment?: string; release?: string };

/** The obsd browser SDK. Every public method is safe to call in any state and never throws. */
export class Observability {
  _o!: Resolved;
  _q: Queued[] = [];
  _dropped = 0;
  _state: ConsentState | 'pending' = 'denied';
  _stopped = false;
  _session!: Session;
  _tx!: Transport;
  _timer: ReturnType<typeof setTimeout> | 0 = 0;
  _sending: Promise<void> = Promise.resolve();
  /** A batch being gzipped: if the page hides meanwhile, it is sent uncompressed instead. */
  _compressing: Batch | null = null;
  /** A batch that was sent and must be resent as it is (same id, same events). */
  _retry: Batch | null = null;
  _off: (() => void)[] = [];
  _log: (...a: unknown[]) => void = noop;
  _started = false;
  _pageKey: string | null = null;
  _pageUrl = '';
  _depth = 0;
  _reportedDepth = 0;
  _errors = new Map<string, { e: WireEvent; n: number; k: number }>();
  _errorCount = 0;

  constructor(options: Options) {
    try {
      this._init(options);
    } catch (e) {
      this._stopped = true;
      console.warn('[obsd] not started:', e);
    }
  }

  /** Record a custom event, e.g. `track('purchase', {amount: 99.99})`. */
  track(name: string, props?: Props): void {
    this._safe(() => {
      if (typeof name !== 'string' || !name) throw new Error('track() needs an event name');
      this._emit('custom', { name, props: copy(props) });
    });
  }

  /** Record a pageview of the current URL now, whether or not the path changed. */
  page(props?: Props): void {
    this._safe(() => this._pageview(copy(props)));
  }

  /** Send everything queued; resolves when done (or when the server asked to wait). */
  flush(): Promise<void> {
    // Chained, so a flush always covers what was queued when it was called.
    return (this._sending = this._sending.then(() => this._drain()).catch(this._log));
  }

  /** Grant: start sending (queued events too). Deny: drop the queue and erase the session. */
  consent(state: ConsentState): void {
    this._safe(() => {
      if (this._stopped) return;
      if (state === 'granted') {
        this._state = state;
        this._session._persistTo(true);
        this._navigated();
        this.flush();
      } else if (state === 'denied') {
        this._state = state;
        this._q = [];
        this._dropped = 0;
        this._compressing = this._retry = null;
        // Forget the page too, so that a later grant records it.
        this._pageKey = null;
        this._session._persistTo(false);
        this._stash();
      }
    });
  }

  /** Stop capturing, remove every listener and hook, and send what is queued. */
  async shutdown(): Promise<void> {
    if (this._stopped) return;
    this._safe(() => {
      this._reportScroll();
      this._off.forEach((off) => off());
      this._off = [];
      clearTimeout(this._timer);
    });
    await this.flush();
    this._stopped = true;
    clearTimeout(this._timer);
    this._stash();
  }

  _init(options: Options): void {
    const o: Resolved = (this._o = {
      endpoint: '/v1/events',
      batchSize: 20,
      flushInterval: 5000,
      compression: true,
      sampleRate: 1,
      debug: false,
      maxQueueSize: 1000,
      maxRetries: 5,
      requireConsent: false,
      respectDoNotTrack: true,
      sessionTimeout: 30 * 60 * 1000,
      pageviews: true,
      clicks: true,
      scroll: true,
      errors: true,
      webVitals: true,
      hashRouting: false,
      ...options,
    });
    if (o.debug) this._log = (...a) => console.info('[obsd]', ...a);
    if (!o.apiKey) throw new Error('apiKey is required');
    for (const k of ['batchSize', 'flushInterval', 'sampleRate', 'maxQueueSize', 'maxRetries', 'sessionTimeout'] as const)
      if (!((o[k] = +o[k]) >= 0)) throw k + ' must be a number >= 0';
    o.batchSize ||= 1;
    const nav = navigator as Navigator & { globalPrivacyControl?: boolean };
    const optedOut =
      o.respectDoNotTrack && (nav.doNotTrack === '1' || (window as { doNotTrack?: string }).doNotTrack === '1' || nav.globalPrivacyControl === true);
    this._state = optedOut ? 'denied' : o.requireConsent ? 'pending' : 'granted';
        this._session = new Session(o.sessionTimeout);
    if (this._state === 'granted') this._session._persistTo(true);
    const url = new URL(o.endpoint, location.href);
    url.searchParams.set('key', o.apiKey);
    this._tx = new Transport(url.href, o.maxRetries, this._log);
    this._restore();

    // Listeners on window in the bubble phase run after web-vitals' capture listeners, so the
    // metrics it reports on hide are queued before the final send.
    this._on(window, 'visibilitychange', () => (document.visibilityState === 'hidden' ? this._pageHidden() : this._stash(true)));
    this._on(window, 'pagehide', this._pageHidden);
    this._on(window, 'pageshow', (e: PageTransitionEvent) => {
      if (e.persisted) {
        // Restored from the back/forward cache: a new view of the page that no load event announces.
        this._pageKey = null;
        this._navigated();
      }
    });
    if (o.pageviews) this._watchNavigation();
    if (o.clicks) this._on(document, 'click', (e: MouseEvent) => this._click(e), true);
    if (o.scroll) this._on(window, 'scroll', this._scrolled, { passive: true });
    if (o.errors) {
      this._on(window, 'error', (e: ErrorEvent) => this._error(fromErrorEvent(e)));
      this._on(window, 'unhandledrejection', (e: PromiseRejectionEvent) => this._error(fromRejection(e)));
    }
    if (o.webVitals) {
      // Web Vitals describe the document's load, so they belong to the URL it was loaded at.
      const landing = location.href;
      const report = (m: Metric) => this._safe(() => this._emit('web_vital', { name: m.name, value: m.value, rating: m.rating, url: landing }));
      [onCLS, onFCP, onINP, onLCP, onTTFB].forEach((on) => on(report));
    }
    // A prerendered or background tab is not a view until someone looks at it.
    const start = () => {
      if (this._started || document.visibilityState !== 'visible' || document.prerendering) return;
      this._started = true;
      this._pageUrl = location.href;
      this._navigated();
    };
    this._on(document, 'visibilitychange', start);
    this._on(document, 'prerenderingchange', start);
    start();
  }

  _watchNavigation(): void {
    const self = this;
    for (const m of ['pushState', 'replaceState'] as const) {
      const original = history[m];
      const patched = function (this: History, ...args: Parameters<History['pushState']>) {
        const result = original.apply(this, args);
        self._urlChanged();
        return result;
      };
      history[m] = patched;
      this._off.push(() => history[m] === patched && (history[m] = original));
    }
    this._on(window, 'popstate', this._urlChanged);
    this._on(window, 'hashchange', this._urlChanged);
  }

  /**
   * Routers set the title (and the page reacts to popstate) after the URL changes, so the
   * pageview is taken a task later; a page hidden before then takes it at once.
   */
  _urlChanged(): void {
    setTimeout(() => this._navigated());
  }

  /** The URL may have changed: record a pageview if the path (plus hash for hash routers) did. */
  _navigated(): void {
    try {
      if (!this._started || !this._o.pageviews) return;
      const key = location.pathname + (this._o.hashRouting ? location.hash : '');
      if (key !== this._pageKey) this._pageview(undefined, key);
    } catch (e) {
      this._log(e);
    }
  }

  _pageview(props?: Props, key = location.pathname + (this._o.hashRouting ? location.hash : '')): void {
    if (this._state === 'denied' || this._stopped) return;
    this._reportScroll();
    const url = location.href;
    this._emit('pageview', { url, referrer: this._pageKey === null ? document.referrer || null : this._pageUrl, title: document.title, props });
    this._pageKey = key;
    this._pageUrl = url;
    this._depth = this._reportedDepth = 0;
  }

  _scrolled(): void {
    const root = document.documentElement;
    const depth = Math.min(100, Math.round(((scrollY + innerHeight) / Math.max(root.scrollHeight, 1)) * 100));
    if (depth > this._depth) this._depth = depth;
  }

  /** One scroll event per page with the deepest point reached, sent when the page is left or hidden. */
  _reportScroll(): void {
    if (this._depth > this._reportedDepth) {
      this._emit('scroll', { depth: this._depth, url: this._pageUrl || location.href });
      this._reportedDepth = this._depth;
    }
  }

  _click(e: MouseEvent): void {
    const info = describeClick(e.target);
    if (info) this._emit('click', info as unknown as Record<string, unknown>);
  }

  /** Repeats of an error still queued only raise its `count`; each error is capped per page. */
  _error(info: ErrorInfo): void {
    const key = [info.message, info.source, info.line, info.col].join('|');
    const seen = this._errors.get(key);
    if (seen && this._q.some((x) => x.e === seen.e)) {
      seen.e.props!.count = ++seen.n;
      return;
    }
    if (this._errorCount >= MAX_ERRORS || (seen && seen.k >= MAX_PER_ERROR)) return;
    const e = this._emit('error', info as unknown as Record<string, unknown>);
    if (e) {
      this._errorCount++;
      this._errors.set(key, { e, n: 1, k: (seen ? seen.k : 0) + 1 });
    }
  }

  _emit(type: string, fields: Record<string, unknown>): WireEvent | undefined {
    if (this._stopped || this._state === 'denied') return;
    const now = Date.now();
    const s = this._session._touch(now);
    // The session id is random, so its leading bits make a stable per-session coin.
    if (this._o.sampleRate < 1 && parseInt(s.slice(0, 8), 16) / 2 ** 32 >= this._o.sampleRate) return;
    const ses = this._session;
    const e: WireEvent = { id: uuid(), type, ts: now, url: location.href, ...fields };
    // The session's first pageview is its entry: the visit's landing page, source and campaign.
    if (type == 'pageview' && !ses._entered) {
      e.entry = ses._entered = true;
      ses._save();
    }
    this._q.push({ s, t: ses._start, e });
    this._bound();
    this._log(type, e);
    if (this._q.length >= this._o.batchSize) this.flush();
    else this._schedule(this._o.flushInterval);
    return e;
  }

  _bound(): void {
    while (this._q.length > this._o.maxQueueSize) {
      this._q.shift();
      this._dropped++;
    }
  }

  _schedule(delay: number): void {
    if (!this._timer && !this._stopped)
      this._timer = setTimeout(() => {
        this._timer = 0;
        this.flush();
      }, delay);
  }

  /** How many events from the head of the queue share its session, up to `max`. */
  _run(max: number): number {
    let n = 0;
    while (n < max && n < this._q.length && this._q[n].s === this._q[0].s) n++;
    return n;
  }

  /** Take the next batch off the queue: the head run of one session, up to `max` events. */
  _take(max: number): Batch {
    const items = this._q.splice(0, this._run(max));
    const batch = { id: uuid(), items, dropped: this._dropped };
    this._dropped = 0;
    return batch;
  }

  _envelope(b: Batch): string {
    const items = b.items;
    return JSON.stringify({
      sdk: { name: 'obsd-js', version: VERSION },
      sent_at: Date.now(),
      batch_id: b.id,
      session_id: items[0].s,
      session_start: items[0].t,
      environment: this._o.environment,
      release: this._o.release,
      dropped: b.dropped || undefined,
      context: {
        url: location.href,
        referrer: document.referrer,
        title: document.title,
        language: navigator.language,
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        screen: [screen.width, screen.height],
        viewport: [innerWidth, innerHeight],
      },
      events: items.map((x) => x.e),
    });
  }

  async _drain(): Promise<void> {
    const tx = this._tx;
    while ((this._retry || this._q.length) && this._state === 'granted' && !tx._refused) {
      const wait = tx._retryAt - Date.now();
      if (wait > 0) {
        clearTimeout(this._timer);
        this._timer = 0;
        return this._schedule(wait);
      }
      const batch = this._retry || this._take(this._o.batchSize);
      this._retry = null;
      const text = this._envelope(batch);
      let body: string | Blob = text;
      if (this._o.compression && text.length >= MIN_GZIP && typeof CompressionStream == 'function') {
        this._compressing = batch;
        try {
          body = await gzip(text);
        } catch (e) {
          this._log('gzip', e);
        }
        // The page was hidden while compressing and sent these uncompressed, or consent was withdrawn.
        if (this._compressing !== batch) continue;
        this._compressing = null;
      }
      const outcome = await tx._post(body, body !== text);
      if (outcome === Outcome.Retry) {
        // Resent later exactly as it is: the server may have stored it and only the answer was lost.
        this._retry = batch;
      } else if (outcome === Outcome.GiveUp) {
        this._dropped += batch.dropped + batch.items.length;
      } else if (outcome === Outcome.Reject) {
        this._dropped += batch.dropped;
      }
    }
  }

  /**
   * The page is being hidden and may never run again: send everything now, uncompressed (gzip is
   * asynchronous), in pieces that fit the keepalive budget; keep what cannot go in the stash.
   */
  _pageHidden(): void {
    this._navigated();
    this._reportScroll();
    if (this._state !== 'granted' || this._stopped) return;
    // A batch being compressed (or waiting to be resent) goes first, whole and with its id.
    const pending = (this._retry = this._compressing || this._retry);
    this._compressing = null;
    const tx = this._tx;
    if (pending && !tx._refused && Date.now() >= tx._retryAt && tx._sendNow(this._envelope(pending))) this._retry = null;
    while (!this._retry && this._q.length && !tx._refused && Date.now() >= tx._retryAt) {
      let n = this._run(this._q.length);
      const batch = { id: uuid(), items: this._q.slice(0, n), dropped: this._dropped };
      let text = this._envelope(batch);
      while (n > 1 && !tx._fits(utf8Size(text))) text = this._envelope({ ...batch, items: this._q.slice(0, (n = Math.ceil(n / 2))) });
      if (!tx._sendNow(text)) {
        if (n > 1 || tx._inflight) break;
        // A single event larger than the whole budget can never leave this way.
        this._dropped++;
      } else this._dropped = 0;
      this._q.splice(0, n);
    }
    this._stash();
  }

  /** Keep unsent events (and a batch awaiting its resend) in sessionStorage for the next page of this tab. */
  _stash(clear?: boolean): void {
    try {
      if (!clear && (this._q.length || this._retry) && this._session._persist)
        sessionStorage.setItem(STASH, JSON.stringify([this._dropped, this._q, this._retry]));
      else sessionStorage.removeItem(STASH);
    } catch {
      // Storage blocked or full: the events are lost with the page, as without a stash.
    }
  }

  _restore(): void {
    try {
      const stashed = sessionStorage.getItem(STASH);
      sessionStorage.removeItem(STASH);
      if (stashed && this._state !== 'denied') {
        const [dropped, items, retry] = JSON.parse(stashed) as [number, Queued[], Batch | null | undefined];
        this._q = items;
        this._dropped = dropped;
        this._retry = retry || null;
        this._log('restored', items);
        this._schedule(0);
      }
    } catch {
      // Nothing stashed that we can read.
    }
  }

  _on<E extends Event>(target: EventTarget, type: string, fn: (e: E) => void, opts?: boolean | AddEventListenerOptions): void {
    const handler = (e: Event) => this._safe(() => fn.call(this, e as E));
    target.addEventListener(type, handler, opts);
    this._off.push(() => target.removeEventListener(type, handler, opts));
  }

  _safe(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this._log(e);
    }
  }
}

/** A snapshot of user props (later changes by the caller do not leak into the queued event). */
const copy = (props?: Props): Props | undefined => {
  if (props == null) return;
  if (typeof props != 'object' || Array.isArray(props)) throw new Error('props must be an object');
  return JSON.parse(JSON.stringify(props));
};
