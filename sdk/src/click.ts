/** What obsd records about a click: where, never what the element says or holds. */
export interface ClickInfo {
  selector: string;
  tag: string;
  href: string | null;
  props?: Record<string, string>;
}

// Elements a person means to click. A click elsewhere is attributed to the nearest of these,
// or dropped when there is none (a click on empty space says nothing).
const INTERACTIVE = 'a,button,input,select,textarea,summary,label,[role=button],[role=link],[role=tab],[role=menuitem],[onclick]';
const OPT_IN = 'data-obs-';
const MAX_DEPTH = 4;

// Names that look generated (CSS-in-JS hashes, React ids, framework counters) change between
// builds and would split one button into many selectors: digits mixed into letters, long numbers.
const stable = (name: string): boolean => /^[a-z_][\w-]*$/i.test(name) && !/\d{3}|[a-z]\d[a-z]|\d[a-z]\d/i.test(name);

const optedIn = (el: Element): boolean => {
  for (const a of el.attributes) if (a.name.startsWith(OPT_IN)) return true;
  return false;
};

/** A short CSS path such as `main > button.buy`, ending at the nearest ancestor with a stable id. */
export function selectorOf(el: Element): string {
  const parts: string[] = [];
  for (let n: Element | null = el; n && parts.length < MAX_DEPTH; n = n.parentElement) {
    const tag = n.tagName.toLowerCase();
    if (tag === 'body' || tag === 'html') break;
    if (n.id && stable(n.id)) {
      parts.unshift(tag + '#' + n.id);
      break;
    }
    const classes = [...n.classList].filter(stable).slice(0, 2);
    parts.unshift(tag + classes.map((c) => '.' + c).join(''));
  }
  return parts.join(' > ');
}

/**
 * Describe a click on `target`, or return null when it should not be recorded (not on anything
 * interactive, or inside `[data-obs-ignore]`). Text and values are only included through the
 * element's own `data-obs-*` attributes; `data-obs-text` with no value opts in its text.
 */
export function describeClick(target: EventTarget | null): ClickInfo | null {
  if (!(target instanceof Element) || target.closest('[data-obs-ignore]')) return null;
  let el: Element | null = target;
  while (el && !el.matches(INTERACTIVE) && !optedIn(el)) el = el.parentElement;
  if (!el) return null;
  // `href` is a string on HTML links; SVG links have an object there and are reported without it.
  const href = (el as HTMLAnchorElement).href;
  const info: ClickInfo = {
    selector: selectorOf(el),
    tag: el.tagName.toLowerCase(),
    href: typeof href === 'string' && href ? href : null,
  };
  for (const a of el.attributes) {
    if (!a.name.startsWith(OPT_IN)) continue;
    const key = a.name.slice(OPT_IN.length);
    (info.props ||= {})[key] = key === 'text' && !a.value ? (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 100) : a.value;
  }
  return info;
}
