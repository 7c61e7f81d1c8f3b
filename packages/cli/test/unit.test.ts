/**
 * The gateway's pure parts, in process: --listen and --upstream-command parsing, the header allow-lists, the
 * upstream URL of a signed target, log sanitizing, the bound on upstream events, message extraction for verify.
 */
import { parseListen, splitCommand } from '../src/commands/gateway.js';
import { asCallToolResult, negotiationArg } from '../src/commands/client-flags.js';
import { messagesOf } from '../src/commands/verify.js';
import { clientResponseHeaders, upstreamRequestHeaders, upstreamUrl } from '../src/gateway/headers.js';
import { boundEvents } from '../src/gateway/upstream.js';
import { formatLogLine, logSafe, logText, type RequestLog } from '../src/log.js';
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

test('--profiles and --mcp-protocol forms', () => {
  expect(profilesArg(undefined, 'x')).toEqual([2]);
  expect(profilesArg('v2,v1', 'x')).toEqual([2, 1]);
  expect(profilesArg('1, 2', 'x')).toEqual([1, 2]);
  expect(() => profilesArg('v2,', 'x')).toThrow(/--profiles/);
  expect(negotiationArg(undefined, 'x')).toEqual({ mode: 'legacy' });
  expect(negotiationArg('auto', 'x')).toEqual({ mode: 'auto' });
  expect(negotiationArg('2026-07-28', 'x')).toEqual({ mode: { pin: '2026-07-28' } });
  expect(() => negotiationArg('modern', 'x')).toThrow(/--mcp-protocol/);
});

test('--upstream-command is split like a shell would, without one', () => {
  expect(splitCommand('node server.js --port 3')).toEqual(['node', 'server.js', '--port', '3']);
  expect(splitCommand(`  "/opt/my dir/node"  'a b' c\\ d "x\\"y" '' `)).toEqual(['/opt/my dir/node', 'a b', 'c d', 'x"y', '']);
  expect(splitCommand('echo $HOME; rm -rf / | cat')).toEqual(['echo', '$HOME;', 'rm', '-rf', '/', '|', 'cat']);
  expect(() => splitCommand('node "unterminated')).toThrow(/unterminated/);
});

test('request headers: an allow-list, the verified DID, forwarding headers of the gateway own', () => {
  const incoming = new Headers({
    host: 'gateway:8443',
    connection: 'keep-alive, x-private',
    'x-private': 'hop',
    'transfer-encoding': 'chunked',
    'content-length': '12',
    'content-type': 'application/json',
    'pqc-envelope': '{}',
    'pqc-session': 'ab'.repeat(16),
    'pqc-peer-did': 'did:pqaid:forged',
    'mcp-session-id': 's-1',
    'mcp-protocol-version': '2025-06-18',
    'mcp-method': 'tools/call',
    'mcp-name': 'echo',
    'mcp-param-x': 'not on the list',
    accept: 'application/json, text/event-stream',
    authorization: 'Bearer stolen',
    cookie: 'session=abc',
    forwarded: 'for=10.0.0.1;host=evil',
    'x-forwarded-for': '10.0.0.1',
    'x-forwarded-host': 'evil.example',
    'x-forwarded-proto': 'https',
    'x-real-ip': '10.0.0.2',
  });
  const out = upstreamRequestHeaders(incoming, { sessionId: 'a'.repeat(32), peerDid: 'did:pqaid:real', profile: 2 }, { remoteAddress: '127.0.0.1', host: 'gateway:8443' });
  expect(Object.fromEntries(out)).toEqual({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-session-id': 's-1',
    'mcp-protocol-version': '2025-06-18',
    'mcp-method': 'tools/call',
    'mcp-name': 'echo',
    'pqc-peer-did': 'did:pqaid:real',
    'x-forwarded-for': '127.0.0.1',
    'x-forwarded-host': 'gateway:8443',
    'x-forwarded-proto': 'http',
  });
  // A Host that is not a plain host[:port] is not passed on.
  const odd = upstreamRequestHeaders(new Headers(), { sessionId: 'a'.repeat(32), peerDid: 'did:pqaid:real', profile: 2 }, { remoteAddress: undefined, host: 'evil/path?x' });
  expect(odd.has('x-forwarded-host')).toBe(false);
  expect(odd.has('x-forwarded-for')).toBe(false);
});

test('response headers: the allow-list only (no cookies, redirects, CORS, hop-by-hop)', () => {
  const upstream = new Headers({
    'content-type': 'text/event-stream',
    'mcp-session-id': 's-1',
    connection: 'close, x-hop',
    'x-hop': '1',
    'transfer-encoding': 'chunked',
    'content-length': '10',
    'content-encoding': 'gzip',
    'cache-control': 'no-cache',
    location: 'http://evil.example/',
    'access-control-allow-origin': '*',
    'www-authenticate': 'Bearer',
    'set-cookie': 'a=1',
  });
  expect(Object.fromEntries(clientResponseHeaders(upstream))).toEqual({ 'content-type': 'text/event-stream', 'mcp-session-id': 's-1', 'cache-control': 'no-cache' });
});

test('the upstream URL of a signed target: the upstream path, its own query first and never overridden', () => {
  const base = new URL('http://up:3000/api/mcp?key=K&tenant=t1');
  expect(upstreamUrl(base, '/mcp').href).toBe('http://up:3000/api/mcp?key=K&tenant=t1');
  expect(upstreamUrl(base, '/mcp?a=1&b=%20x').href).toBe('http://up:3000/api/mcp?key=K&tenant=t1&a=1&b=%20x');
  expect(upstreamUrl(base, '/prefix/MCP/?key=evil&k%65y=evil2&tenant=t2&x=1#frag').href).toBe('http://up:3000/api/mcp?key=K&tenant=t1&x=1');
  // Names a query parser reads as the operator's parameter, an array or object of it, or after a ';': dropped.
  expect(upstreamUrl(base, '/mcp?tenant[]=evil&tenant%5B0%5D=e&Tenant=e&tenant.x=e&TENANT[a]=e&x=1;tenant=e&%20tenant=e&tenant%00x=e&+tenant=e&y=2').href).toBe(
    'http://up:3000/api/mcp?key=K&tenant=t1&y=2',
  );
  expect(upstreamUrl(new URL('http://up/mcp'), '/mcp?x=1').href).toBe('http://up/mcp?x=1');
  expect(upstreamUrl(new URL('http://up/mcp'), '/mcp?').href).toBe('http://up/mcp');
});

test('log values: one printable-ASCII token each, nothing that ends a line or splits a field', () => {
  expect(logSafe('tools/call')).toBe('tools/call');
  expect(logSafe('a\nb\r\tc d\\e')).toBe('a\\u000ab\\u000d\\u0009c\\u0020d\\\\e');
  expect(logSafe('\u202eevil\u2028x\u0000é')).toBe('\\u202eevil\\u2028x\\u0000\\u00e9');
  expect(logSafe('')).toBe('-');
  expect(logSafe('x'.repeat(300))).toBe(`${'x'.repeat(200)}...(+100)`);
  expect(logText('a b\nc')).toBe('a b\\u000ac');
  const record: RequestLog = {
    time: '2026-01-01T00:00:00.000Z',
    http_method: 'POST',
    path: '/mcp\n2026-01-01T00:00:00.000Z POST /mcp tools/call did:pqaid:x verified 200 1ms',
    rpc_method: 'x\ny',
    peer_did: null,
    verdict: 'rejected',
    reason: 'missing_envelope',
    status: 401,
    latency_ms: 1,
    signed: 0,
    aborted: false,
  };
  const line = formatLogLine(record);
  expect(line.split('\n')).toHaveLength(1);
  expect(line.split(' ')).toHaveLength(8);
});

test('an upstream event stream is cut as soon as one event passes the bound, whatever the line ends', async () => {
  const run = async (text: string, max: number) => {
    let tooLarge = false;
    const stream = new Response(text).body!.pipeThrough(boundEvents(max, () => (tooLarge = true)));
    const out = await new Response(stream).text().catch(() => 'ERROR');
    return { out, tooLarge };
  };
  expect(await run('data: 12345\n\ndata: 12345\r\n\r\ndata: 12345\r\rdata: 1\n\n', 12)).toEqual({
    out: 'data: 12345\n\ndata: 12345\r\n\r\ndata: 12345\r\rdata: 1\n\n',
    tooLarge: false,
  });
  // Many short lines in one event (CRLF must not count as a blank line), or one long line: both cut.
  expect(await run(`data: a\r\n${'data: aaaa\r\n'.repeat(10)}\r\n`, 40)).toEqual({ out: 'ERROR', tooLarge: true });
  expect(await run(`data: ${'z'.repeat(100)}`, 40)).toEqual({ out: 'ERROR', tooLarge: true });
});

test('a v1 tool result as an MCP CallToolResult', () => {
  expect(asCallToolResult({ content: 'plain' })).toEqual({ content: [{ type: 'text', text: 'plain' }] });
  expect(asCallToolResult({ content: { sum: 3 } })).toEqual({ content: [{ type: 'text', text: '{"sum":3}' }] });
  expect(asCallToolResult({ content: [{ type: 'text', text: 'mcp' }], isError: true })).toEqual({ content: [{ type: 'text', text: 'mcp' }], isError: true });
  expect(asCallToolResult(42)).toEqual({ content: [{ type: 'text', text: '42' }] });
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
