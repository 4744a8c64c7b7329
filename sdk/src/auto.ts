import { Observability, type Options } from './index';

declare global {
  interface Window {
    Observability: typeof Observability;
    obs?: Observability;
  }
}

/**
 * The script-tag build: `<script src="/sdk.js" data-api-key="…">` starts the SDK as `window.obs`.
 * Every option can be given as a data attribute in kebab case (`data-flush-interval="2000"`).
 * Without `data-endpoint`, events go to `/v1/events` on the host the script was loaded from.
 */
window.Observability = Observability;
const script = document.currentScript as HTMLScriptElement | null;
if (script && script.dataset.apiKey && !window.obs) {
  const options: Record<string, unknown> = { endpoint: new URL('/v1/events', script.src).href };
  // Attributes rather than `dataset` entries: some DOMs leave valueless ones out of the latter.
  for (const { name, value } of script.attributes) {
    if (name.startsWith('data-'))
      options[name.slice(5).replace(/-(.)/g, (_, c: string) => c.toUpperCase())] =
        value === '' || value === 'true' ? true : value === 'false' ? false : value;
  }
  window.obs = new Observability(options as unknown as Options);
}
