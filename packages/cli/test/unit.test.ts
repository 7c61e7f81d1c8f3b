/** The gateway's pure parts, in process: --listen parsing, header filtering, message extraction for verify. */
import { parseListen } from '../src/commands/gateway.js';
import { messagesOf } from '../src/commands/verify.js';
import { clientResponseHeaders, upstreamRequestHeaders } from '../src/gateway.js';
import { profilesArg } from '../src/util.js';

test('--listen forms', () => {
  expect(parseListen('127.0.0.1:8443')).toEqual({ host: '127.0.0.1', port: 8443 });
  expect(parseListen('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
  expect(parseListen('[::1]:8443')).toEqual({ host: '::1', port: 8443 });
  expect(parseListen('localhost:80')).toEqual({ host: 'localhost', port: 80 });
  expect(parseListen('8443')).toEqual({ host: '127.0.0.1', port: 8443 });
  expect(parseListen(':8443')).toEqual({ host: '127.0.0.1', port: 8443 });
  for (const bad of ['', 'localhost', '::1:80', '1.2.3.4:65536', 'host:port', '[::1]']) expect(() => parseListen(bad)).toThrow(/--listen must be HOST:PORT/);
});

test('--profiles forms', () => {
  expect(profilesArg(undefined, 'x')).toEqual([2]);
  expect(profilesArg('v2,v1', 'x')).toEqual([2, 1]);
  expect(profilesArg('1, 2', 'x')).toEqual([1, 2]);
  expect(() => profilesArg('v2,', 'x')).toThrow(/--profiles/);
});

test('hop-by-hop headers are dropped both ways; PQC headers never reach the upstream; the verified DID does', () => {
  const incoming = new Headers({
    host: 'gateway:8443',
    connection: 'keep-alive, x-private',
    'keep-alive': 'timeout=5',
    'x-private': 'hop',
    te: 'trailers',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'proxy-authorization': 'Basic x',
    'content-length': '12',
    'pqc-envelope': '{}',
    'pqc-peer-did': 'did:pqaid:forged',
    'mcp-session-id': 's-1',
    'mcp-protocol-version': '2025-06-18',
    'last-event-id': '7',
    accept: 'application/json, text/event-stream',
    authorization: 'Bearer upstream-token',
    'x-forwarded-for': '10.0.0.1',
  });
  const out = upstreamRequestHeaders(incoming, { sessionId: 'a'.repeat(32), peerDid: 'did:pqaid:real', profile: 2 }, '127.0.0.1');
  expect(Object.fromEntries(out)).toEqual({
    'mcp-session-id': 's-1',
    'mcp-protocol-version': '2025-06-18',
    'last-event-id': '7',
    accept: 'application/json, text/event-stream',
    authorization: 'Bearer upstream-token',
    'pqc-peer-did': 'did:pqaid:real',
    'x-forwarded-for': '10.0.0.1, 127.0.0.1',
    'x-forwarded-host': 'gateway:8443',
    'x-forwarded-proto': 'http',
  });
  expect(upstreamRequestHeaders(new Headers({ 'pqc-peer-did': 'did:pqaid:forged' }), undefined, undefined).has('pqc-peer-did')).toBe(false);

  const upstream = new Headers({
    'content-type': 'text/event-stream',
    'mcp-session-id': 's-1',
    connection: 'close, x-hop',
    'x-hop': '1',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    'content-length': '10',
    'content-encoding': 'gzip',
    'cache-control': 'no-cache',
  });
  upstream.append('set-cookie', 'a=1');
  upstream.append('set-cookie', 'b=2');
  const back = clientResponseHeaders(upstream);
  expect([...new Set(back.keys())].sort()).toEqual(['cache-control', 'content-type', 'mcp-session-id', 'set-cookie']);
  expect(back.getSetCookie()).toEqual(['a=1', 'b=2']);
});

test('verify reads one message, a batch, or the data of an SSE capture', () => {
  expect(messagesOf('  {"a":1}\n')).toEqual(['{"a":1}']);
  expect(messagesOf('[{"a":1.0},{"b":2}]')).toEqual(['{"a":1.0}', '{"b":2}']);
  expect(messagesOf('event: message\nid: 1\ndata: {"a":1}\n\n: keepalive\n\nid: 2\ndata:\n\nevent: message\r\ndata: {"b":\r\ndata: 2}\r\n\r\n')).toEqual([
    '{"a":1}',
    '{"b":\n2}',
  ]);
  expect(messagesOf('')).toEqual([]);
  expect(messagesOf('not json')).toEqual(['not json']);
});
