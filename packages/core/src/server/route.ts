/**
 * What a request is to the PQC layer, decided on the path the framework routes on, and the request target a client
 * signed (docs/PROTOCOL.md §3 step 8). Frameworks route loosely (decoded, any case, trailing slashes ignored, under
 * a mount prefix), so the decision is made on the loosest form: a path that any framework could route to the
 * endpoint is protected. Over-protecting fails closed; under-protecting would let unsigned calls through.
 */
import type { ResolvedServerOptions } from './options.js';

/** What a path is to the PQC layer. */
export type RouteKind = 'handshake' | 'endpoint' | undefined;

/**
 * The loose form of a path: percent-decoded (where it decodes), backslashes as slashes, dot segments resolved, `;`
 * parameters cut, lowercase, repeated and trailing slashes (and trailing dots) removed.
 */
export function routeKey(pathname: string): string {
  let path = pathname;
  for (let i = 0; i < 3 && path.includes('%'); i++) {
    try {
      path = decodeURIComponent(path);
    } catch {
      break; // undecodable escapes stay: no framework routes them to the endpoint either
    }
  }
  path = path.replace(/\\/g, '/').toLowerCase();
  const segments: string[] = [];
  for (let segment of path.split('/')) {
    segment = segment.split(';', 1)[0]!.replace(/[.\s]+$/, '');
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  return `/${segments.join('/')}`;
}

/** True when the loose form of `path` is `configured`'s or ends with it (mounted under a prefix). */
function matches(key: string, configured: string): boolean {
  return key === configured || (configured !== '/' && key.endsWith(configured));
}

/** The router of one handler: what each routed path is. */
export function createRouter(o: ResolvedServerOptions): (routedPath: string) => RouteKind {
  const endpoints = o.endpoints.map(routeKey);
  // The v1 handshake path is always the handshake's: with v1 off, a v1 peer is told so (§6), not given a 404.
  const handshakes = [o.handshakePath, o.legacyHandshakePath].map(routeKey);
  return (routedPath) => {
    const key = routeKey(routedPath);
    if (handshakes.some((h) => matches(key, h))) return 'handshake';
    return endpoints.some((e) => matches(key, e)) ? 'endpoint' : undefined;
  };
}

/**
 * The origin-form target (path and query) of a raw request target. An absolute-form target (`http://host/mcp`) counts
 * by its path and query when it is a plain http(s) URL with a host that reads the same in every parser; anything else
 * (`http:///mcp`, `https:mcp`, a backslash, an authority-form) is `undefined`: a target the adapter cannot parse the
 * way every framework would is refused, never passed on.
 */
export function originForm(target: string): string | undefined {
  if (target.startsWith('/')) return target.startsWith('//') ? undefined : target;
  if (!/^https?:\/\/[^/?#\\]+/i.test(target) || target.includes('\\')) return undefined;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return undefined;
  }
  const rebuilt = `${url.protocol}//${url.host}${url.pathname}${url.search}`;
  if (rebuilt.toLowerCase() !== target.toLowerCase() && `${rebuilt}`.toLowerCase() !== `${target}/`.toLowerCase()) return undefined;
  return `${url.pathname}${url.search}`;
}
