import { describe, expect, test, vi } from 'vitest';
import { selectorOf } from '../../src/click';
import { net, settle, setVisibility, start } from './harness';

const only = (what: 'pageviews' | 'clicks' | 'scroll' | 'errors') => ({
  pageviews: false,
  clicks: false,
  scroll: false,
  errors: false,
  [what]: true,
});

async function sent(obs: { flush(): Promise<void> }) {
  vi.advanceTimersByTime(0); // navigations are recorded a task after the URL changes
  await obs.flush();
  return net.events();
}

describe('pageviews', () => {
  test('the first view carries the URL, document referrer and title', async () => {
    document.title = 'Home';
    const [pv] = await sent(start(only('pageviews')));
    expect(pv).toMatchObject({ type: 'pageview', url: location.href, title: 'Home' });
    expect(pv.referrer).toBe(document.referrer || null);
  });

  test('single-page navigation: pushState and popstate count, the previous URL is the referrer', async () => {
    const obs = start(only('pageviews'));
    const home = location.href;
    history.pushState({}, '', '/products');
    vi.advanceTimersByTime(0);
    history.pushState({}, '', '/cart?step=1');
    vi.advanceTimersByTime(0);
    history.back = () => {
      history.replaceState({}, '', '/products');
      window.dispatchEvent(new PopStateEvent('popstate'));
    };
    history.back();
    const views = (await sent(obs)).filter((e) => e.type === 'pageview');
    expect(views.map((v) => new URL(v.url).pathname)).toEqual(['/', '/products', '/cart', '/products']);
    expect(views[1].referrer).toBe(home);
    expect(views[2].referrer).toBe(new URL('/products', home).href);
  });

  test('the title a router sets after changing the URL is the one recorded', async () => {
    const obs = start(only('pageviews'));
    history.pushState({}, '', '/products');
    document.title = 'Products';
    const views = await sent(obs);
    expect(views.map((v) => v.title)).toEqual(['Test page', 'Products']);
  });

  test('a redirect within one task counts only where it lands', async () => {
    const obs = start(only('pageviews'));
    history.pushState({}, '', '/old-path');
    history.replaceState({}, '', '/new-path');
    expect((await sent(obs)).map((v) => new URL(v.url).pathname)).toEqual(['/', '/new-path']);
  });

  test('a navigation right before the page is hidden is still recorded, before the final send', async () => {
    const obs = start(only('pageviews'));
    await obs.flush();
    history.pushState({}, '', '/last');
    setVisibility('hidden');
    const views = await net.events();
    expect(views.map((v) => new URL(v.url).pathname)).toEqual(['/', '/last']);
    void obs;
  });

  test('a router replacing state on the same path does not count again', async () => {
    const obs = start(only('pageviews'));
    history.replaceState({ scroll: 1 }, '', '/');
    history.replaceState({}, '', '/?sort=price');
    history.pushState({}, '', '/');
    history.replaceState({}, '', '/checkout');
    const views = (await sent(obs)).map((v) => new URL(v.url).pathname + new URL(v.url).search);
    expect(views).toEqual(['/', '/checkout']);
  });

  test('hash changes count only with hashRouting', async () => {
    const plain = start(only('pageviews'));
    location.hash = '#/a';
    window.dispatchEvent(new HashChangeEvent('hashchange'));
    expect(await sent(plain)).toHaveLength(1);
    await plain.shutdown();
    net.requests = [];

    const hashed = start({ ...only('pageviews'), hashRouting: true });
    location.hash = '#/b';
    window.dispatchEvent(new HashChangeEvent('hashchange'));
    expect((await sent(hashed)).map((v) => new URL(v.url).hash)).toEqual(['#/a', '#/b']);
  });

  test('a restore from the back/forward cache is a new view of the same page', async () => {
    const obs = start(only('pageviews'));
    const restore = new Event('pageshow') as PageTransitionEvent;
    Object.defineProperty(restore, 'persisted', { value: true });
    window.dispatchEvent(restore);
    window.dispatchEvent(new Event('pageshow')); // a normal load's pageshow is not a new view
    expect((await sent(obs)).map((e) => e.type)).toEqual(['pageview', 'pageview']);
  });

  test('a page opened in the background is counted when it becomes visible, not before', async () => {
    setVisibility('hidden');
    const obs = start(only('pageviews'));
    history.pushState({}, '', '/elsewhere'); // navigation while never seen is not a view either
    await obs.flush();
    expect(net.requests).toHaveLength(0);
    setVisibility('visible');
    const views = await sent(obs);
    expect(views.map((v) => new URL(v.url).pathname)).toEqual(['/elsewhere']);
  });

  test('a prerendered page is counted on activation', async () => {
    Object.defineProperty(document, 'prerendering', { configurable: true, get: () => true });
    const obs = start(only('pageviews'));
    await obs.flush();
    expect(net.requests).toHaveLength(0);
    Object.defineProperty(document, 'prerendering', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('prerenderingchange'));
    expect((await sent(obs)).map((e) => e.type)).toEqual(['pageview']);
  });

  test('page() records a view on demand, with props', async () => {
    const obs = start(only('pageviews'));
    obs.page({ variant: 'b' });
    const views = await sent(obs);
    expect(views).toHaveLength(2);
    expect(views[1].props).toEqual({ variant: 'b' });
  });

  test('shutdown restores the history methods it wrapped', async () => {
    const push = history.pushState;
    const obs = start(only('pageviews'));
    expect(history.pushState).not.toBe(push);
    await obs.shutdown();
    expect(history.pushState).toBe(push);
  });
});

describe('scroll depth', () => {
  function scrollTo(y: number) {
    Object.defineProperty(document.documentElement, 'scrollHeight', { configurable: true, get: () => 4000 });
    Object.defineProperty(window, 'innerHeight', { configurable: true, get: () => 1000 });
    Object.defineProperty(window, 'scrollY', { configurable: true, get: () => y });
    window.dispatchEvent(new Event('scroll'));
  }

  test('the deepest point of each page is reported once, when the page is left', async () => {
    const obs = start({ ...only('scroll'), pageviews: true });
    scrollTo(1000); // 50 %
    scrollTo(2000); // 75 %
    scrollTo(0);
    const first = location.href;
    history.pushState({}, '', '/next');
    vi.advanceTimersByTime(0);
    scrollTo(3000); // 100 %
    setVisibility('hidden');
    const scrolls = (await net.events()).filter((e) => e.type === 'scroll');
    expect(scrolls).toEqual([
      expect.objectContaining({ depth: 75, url: first }),
      expect.objectContaining({ depth: 100, url: location.href }),
    ]);
    void obs;
  });

  test('nothing is reported for a page that was not scrolled', async () => {
    const obs = start({ ...only('scroll'), pageviews: true });
    history.pushState({}, '', '/next');
    setVisibility('hidden');
    expect((await net.events()).filter((e) => e.type === 'scroll')).toEqual([]);
    void obs;
  });
});

describe('clicks', () => {
  test('records tag, selector and link target of the interactive element', async () => {
    document.body.innerHTML = `<main><nav class="top"><a class="nav-link" href="/cart"><span>Cart (2)</span></a></nav>
      <button class="buy primary big" data-secret="x">Buy now for Jane</button></main>`;
    const obs = start(only('clicks'));
    (document.querySelector('span') as HTMLElement).click();
    (document.querySelector('button') as HTMLElement).click();
    const [link, button] = await sent(obs);
    expect(link).toMatchObject({ type: 'click', tag: 'a', selector: 'main > nav.top > a.nav-link', href: new URL('/cart', location.href).href });
    expect(button).toMatchObject({ type: 'click', tag: 'button', selector: 'main > button.buy.primary', href: null });
    expect(button).not.toHaveProperty('props');
  });

  test('never captures text content or input values', async () => {
    document.body.innerHTML = `<form><input name="email" value="jane@example.com"><textarea>my secret</textarea>
      <button>Pay 1234 5678 9012 3456</button></form>`;
    const obs = start(only('clicks'));
    for (const el of document.querySelectorAll('input, textarea, button')) (el as HTMLElement).click();
    await obs.flush();
    const wire = JSON.stringify(await net.bodies());
    expect((await net.events()).map((e) => e.tag)).toEqual(['input', 'textarea', 'button']);
    for (const secret of ['jane@example.com', 'my secret', '1234', 'Pay']) expect(wire).not.toContain(secret);
  });

  test('data-obs-* attributes opt an element in, including its text', async () => {
    document.body.innerHTML = `<div class="card" data-obs-product="sku-42"><h3>Lamp</h3></div>
      <button data-obs-text>  Add   to cart </button>`;
    const obs = start(only('clicks'));
    (document.querySelector('h3') as HTMLElement).click();
    (document.querySelector('button') as HTMLElement).click();
    const [card, button] = await sent(obs);
    expect(card).toMatchObject({ tag: 'div', selector: 'div.card', props: { product: 'sku-42' } });
    expect(button.props).toEqual({ text: 'Add to cart' });
  });

  test('clicks on nothing interactive, or inside data-obs-ignore, are not recorded', async () => {
    document.body.innerHTML = `<p>plain text</p><div data-obs-ignore><button>private</button></div>`;
    const obs = start(only('clicks'));
    (document.querySelector('p') as HTMLElement).click();
    (document.querySelector('button') as HTMLElement).click();
    await obs.flush();
    expect(net.requests).toHaveLength(0);
  });

  test('a page that stops propagation still has its clicks recorded', async () => {
    document.body.innerHTML = `<button id="go">Go</button>`;
    document.body.addEventListener('click', (e) => e.stopPropagation());
    const obs = start(only('clicks'));
    (document.querySelector('button') as HTMLElement).click();
    expect(await sent(obs)).toHaveLength(1);
  });
});

describe('selectors', () => {
  const el = (html: string, pick: string) => {
    document.body.innerHTML = html;
    return document.querySelector(pick)!;
  };

  test('stop at the nearest stable id', () => {
    expect(selectorOf(el('<section id="checkout"><div class="row"><button class="pay">x</button></div></section>', 'button'))).toBe(
      'section#checkout > div.row > button.pay',
    );
    expect(selectorOf(el('<button id="buy" class="a">x</button>', 'button'))).toBe('button#buy');
  });

  test('skip generated ids and class names, keep at most two classes', () => {
    expect(selectorOf(el('<div id=":r1:"><a class="css-1q8jkf3 sc-a1b2 Button_root__1234 link big bold">x</a></div>', 'a'))).toBe('div > a.link.big');
    expect(selectorOf(el('<div id="ember1234"><b>x</b></div>', 'b'))).toBe('div > b');
  });

  test('are at most four levels deep', () => {
    expect(selectorOf(el('<div><ul><li><p><span><i>x</i></span></p></li></ul></div>', 'i'))).toBe('li > p > span > i');
  });
});

describe('errors', () => {
  function throwIn(message: string, error?: Error, filename = 'https://shop.example/app.js') {
    window.dispatchEvent(new ErrorEvent('error', { message, error, filename, lineno: 10, colno: 5 }));
  }
  function reject(reason: unknown) {
    const e = new Event('unhandledrejection');
    Object.assign(e, { reason, promise: null });
    window.dispatchEvent(e);
  }

  test('an uncaught error carries message, stack, source, line and column', async () => {
    const obs = start(only('errors'));
    const err = new TypeError('x is undefined');
    throwIn('Uncaught TypeError: x is undefined', err);
    const [ev] = await sent(obs);
    expect(ev).toMatchObject({
      type: 'error',
      message: 'x is undefined',
      stack: err.stack,
      source: 'https://shop.example/app.js',
      line: 10,
      col: 5,
      props: { mechanism: 'onerror' },
    });
  });

  test('a cross-origin "Script error." is reported as exactly that', async () => {
    const obs = start(only('errors'));
    window.dispatchEvent(new ErrorEvent('error', { message: 'Script error.' }));
    const [ev] = await sent(obs);
    expect(ev.message).toBe('Script error.');
    expect(ev.props).toEqual({ mechanism: 'onerror', cross_origin: true });
    expect(ev).not.toHaveProperty('stack');
  });

  test('rejections: Errors keep their stack, other reasons are described as not being Errors', async () => {
    const obs = start(only('errors'));
    const err = new Error('fetch failed');
    reject(err);
    reject('plain string');
    reject({ code: 42 });
    reject(undefined);
    const [a, b, c, d] = await sent(obs);
    expect(a).toMatchObject({ message: 'fetch failed', stack: err.stack, props: { mechanism: 'unhandledrejection' } });
    expect(b).toMatchObject({ message: 'Non-Error promise rejection: plain string', props: { reason_type: 'string' } });
    expect(c).toMatchObject({ message: 'Non-Error promise rejection: {"code":42}', props: { reason_type: 'object' } });
    expect(d).toMatchObject({ message: 'Non-Error promise rejection: undefined', props: { reason_type: 'undefined' } });
  });

  test('a storm of the same error is collapsed into a count, and capped', async () => {
    const obs = start(only('errors'));
    for (let i = 0; i < 1000; i++) throwIn('boom', new Error('boom'));
    throwIn('other', new Error('other'));
    await obs.flush();
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) throwIn('boom', new Error('boom'));
      await obs.flush();
    }
    const errors = await net.events();
    expect(errors[0].props.count).toBe(1000);
    expect(errors[1]).toMatchObject({ message: 'other' });
    expect(errors[1].props).not.toHaveProperty('count');
    const booms = errors.filter((e) => e.message === 'boom');
    expect(booms.length).toBe(5);
    expect(booms[1].props.count).toBe(100);
  });

  test('resource load errors (plain Events) are not reported as script errors', async () => {
    const obs = start(only('errors'));
    document.body.innerHTML = '<img src="missing.png">';
    document.querySelector('img')!.dispatchEvent(new Event('error'));
    await obs.flush();
    expect(net.requests).toHaveLength(0);
  });
});

describe('never breaks the host page', () => {
  test('bad input to the public API is ignored without throwing', async () => {
    const obs = start(only('pageviews'));
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => obs.track(circular as never)).not.toThrow();
    expect(() => obs.track('x', circular)).not.toThrow();
    expect(() => obs.track('x', 'not an object' as never)).not.toThrow();
    expect(() => obs.consent('maybe' as never)).not.toThrow();
    obs.track('fine', { ok: true });
    const events = await sent(obs);
    expect(events.map((e) => e.type + ':' + (e.name ?? ''))).toEqual(['pageview:', 'custom:fine']);
  });

  test('a missing apiKey leaves an inert SDK', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const obs = start({ apiKey: '' });
    obs.track('x');
    obs.page();
    await obs.flush();
    await obs.shutdown();
    expect(net.requests).toHaveLength(0);
    expect(warn).toHaveBeenCalledOnce();
  });

  test('fetch throwing synchronously, or sendBeacon throwing, does not reach the page', async () => {
    const obs = start(only('pageviews'));
    vi.stubGlobal('fetch', () => {
      throw new Error('blocked by an extension');
    });
    Object.defineProperty(navigator, 'sendBeacon', {
      configurable: true,
      get: () => () => {
        throw new TypeError('not allowed');
      },
    });
    await expect(obs.flush()).resolves.toBeUndefined();
    expect(() => setVisibility('hidden')).not.toThrow();
    await settle();
  });

  test('props are copied when tracked, so later changes by the page do not leak in', async () => {
    const obs = start(only('errors'));
    const props = { amount: 1 };
    obs.track('buy', props);
    props.amount = 2;
    expect((await sent(obs))[0].props).toEqual({ amount: 1 });
  });
});
