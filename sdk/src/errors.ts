/** The fields of an `error` event on the wire. */
export interface ErrorInfo {
  message: string;
  stack?: string;
  source?: string;
  line?: number;
  col?: number;
  props: Record<string, unknown>;
}

const clip = (s: unknown, max: number): string | undefined => (s ? String(s).slice(0, max) : undefined);

/** A window `error` event; a cross-origin "Script error." is kept as such and flagged. */
export function fromErrorEvent(e: ErrorEvent): ErrorInfo {
  const err = e.error as Error | undefined;
  const info: ErrorInfo = {
    message: clip(err && err.message != null ? err.message : e.message, 1024) || 'Unknown error',
    stack: clip(err && err.stack, 8192),
    source: clip(e.filename, 2048),
    line: e.lineno || undefined,
    col: e.colno || undefined,
    props: { mechanism: 'onerror' },
  };
  // Browsers hide what scripts from other origins throw unless they are loaded with
  // `crossorigin` and CORS headers; say so instead of pretending to know more.
  if (!err && !e.filename && /^Script error\.?$/.test(e.message)) info.props.cross_origin = true;
  return info;
}

/** An `unhandledrejection`; a reason that is not an Error is described, not dressed up as one. */
export function fromRejection(e: PromiseRejectionEvent): ErrorInfo {
  const r = e.reason;
  const props: Record<string, unknown> = { mechanism: 'unhandledrejection' };
  if (r instanceof Error) return { message: clip(r.message, 1024) || r.name, stack: clip(r.stack, 8192), props };
  let text: string;
  try {
    text = typeof r == 'string' ? r : JSON.stringify(r) ?? String(r);
  } catch {
    text = '[unserializable]';
  }
  props.reason_type = r === null ? 'null' : typeof r;
  return { message: 'Non-Error promise rejection: ' + clip(text, 1000), props };
}
