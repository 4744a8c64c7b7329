import { hex } from './util';

const KEY = 'obsd_session';

/**
 * The visitor's session: a random id kept in `sessionStorage` (never a cookie) that rotates
 * after `timeout` ms without activity. Nothing is written until `persist(true)`, so a page
 * waiting for consent leaves no trace on the device. It also remembers when it began and
 * whether its first pageview (the visit's entry) was sent, for the server's visit reports.
 */
export class Session {
  _id = '';
  _last = 0;
  _start = 0;
  _entered = false;
  _persist = false;

  _timeout: number;

  constructor(timeout: number) {
    this._timeout = timeout;
    try {
      const [id, last, start, entered] = (sessionStorage.getItem(KEY) || '').split('.');
      if (id) {
        this._id = id;
        this._last = +last;
        this._start = +start || +last;
        this._entered = entered !== '0';
      }
    } catch {
      // Storage can be blocked (sandboxed iframes, privacy modes): the id then lives in memory.
    }
  }

  /** The id for an event happening at `now`, rotating it after inactivity. */
  _touch(now: number): string {
    if (!this._id || now - this._last > this._timeout) {
      this._id = hex(8);
      this._start = now;
      this._entered = false;
    }
    this._last = now;
    if (this._persist) this._save();
    return this._id;
  }

  /** Start (true) or stop and erase (false) storing the session on the device. */
  _persistTo(on: boolean): void {
    this._persist = on;
    this._save();
  }

  _save(): void {
    try {
      if (!this._persist) sessionStorage.removeItem(KEY);
      else if (this._id) sessionStorage.setItem(KEY, [this._id, this._last, this._start, +this._entered].join('.'));
    } catch {
      // See the constructor.
    }
  }
}
