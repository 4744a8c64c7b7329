/** Random lowercase hex of `bytes` bytes; `crypto.getRandomValues` works in insecure contexts too. */
export const hex = (bytes: number): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => (b + 256).toString(16).slice(1)).join('');

/** A random (version 4) UUID: the event id the server deduplicates on. */
export const uuid = (): string => {
  const h = hex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20)}`;
};

/** Size of a string once UTF-8 encoded, which is what the keepalive budget counts. */
export const utf8Size = (s: string): number => new TextEncoder().encode(s).length;

export const noop = (): void => {};
