/**
 * A stand-in for the Python predecessor's servers (`pqc-mcp-transport` 0.1.0), written from their observed wire
 * behaviour (not from their code), so that our v1 client is tested against what it must talk to, in CI, without
 * Python. Tests check it against the answers recorded from the real package (fixtures/python-peer/).
 *
 * `standalone` is `PQCMCPServer.run()`: a hand-written HTTP/1.1 server that reads one request per connection (the head,
 * then a single read of at most `Content-Length` bytes), answers exactly `HTTP/1.1 200 OK`, `Content-Type` and
 * `Content-Length`, and closes the connection without saying so. `POST <any path>/handshake` is the handshake; any
 * other POST with a body is JSON-RPC, without `initialize`: `tools/list` gives `{name, description}` items (no
 * `inputSchema`), `tools/call` gives `{"content": <the tool's value>}`. A message without `_pqc` gets an unsigned
 * -32600, one whose signature fails a bare 500, a session id it does not know is served all the same.
 *
 * `asgi` is `PQCMiddleware` in front of a small Starlette app under uvicorn: keep-alive, uvicorn's headers; the
 * middleware verifies a POST body that carries `_pqc` (403 when it fails) and lets anything else through, and signs
 * every JSON answer, the handshake's too.
 *
 * Both sign v1 envelopes (docs/PROTOCOL.md §7: SHA3-256 of the canonical message without `_pqc`, ML-DSA with an empty
 * context, `public_key` included, no `session_id`), with Python's timestamps, and write `json.dumps` bodies (`", "`,
 * ASCII escapes, numbers as Python prints them: `10.0`, `1e+16`).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { AgentIdentity, JsonNumber, PeerIdentity, canonicalJson, parseLossless, type Algorithm, type JsonObject, type JsonValue } from '@pqc-mcp/core';
import { pythonDumps, pythonIsoformat, pythonSum } from './python-peer.js';

/** Which of the predecessor's servers to stand in for. */
export type PythonServerFlavour = 'standalone' | 'asgi';

/** A request as the stand-in received it. */
export interface StandInRequest {
  connection: number;
  method: string;
  path: string;
  /** Header lines as received (names as sent). */
  headers: [string, string][];
  body: string;
}

/** Options of `startPythonServer`. */
export interface PythonServerOptions {
  /** The server's identity. */
  identity: AgentIdentity;
  /** `standalone` (default) or `asgi`. */
  flavour?: PythonServerFlavour;
  /** The clock of the timestamps it writes, in microseconds since the epoch (default: the wall clock). */
  nowMicros?: () => number;
  /**
   * A lying server: gets each answer the stand-in would send (its text, and the message it signed) and returns the
   * text to send instead (for the client's side of the hostile cases).
   */
  tamper?: (text: string, message: JsonObject) => Promise<string> | string;
}

/** A running stand-in. */
export interface PythonServerStandIn {
  /** The `server_url` a Python client is given; `<url>/handshake` and `<url>/mcp` are served. */
  url: string;
  /** `<url>/mcp`: what `PQCMCPClient` is given as `serverUrl` (its v1 handshake goes to `handshake` beside it). */
  mcpUrl: string;
  /** Every request received, in order. */
  requests: StandInRequest[];
  /** TCP connections accepted. */
  readonly connections: number;
  close(): Promise<void>;
}

/** The tools every Python peer of the captures registered, in order. */
const TOOL_DESCRIPTIONS: [string, string][] = [
  ['echo', 'Echo back the input text'],
  ['add', 'Add two numbers'],
];

class ToolError extends Error {}

/** `handler(**arguments)` of the captured peers' tools, with Python's numbers. */
function callTool(name: string, args: JsonValue | undefined): JsonValue {
  const given = args instanceof Map ? args : new Map<string, JsonValue>();
  const expect = (names: string[]) => {
    const missing = names.filter((n) => !given.has(n));
    if (missing.length > 0) throw new ToolError(`${name}() missing ${missing.length} required positional argument${missing.length > 1 ? 's' : ''}: ${missing.map((m) => `'${m}'`).join(' and ')}`);
    const extra = [...given.keys()].find((k) => !names.includes(k));
    if (extra !== undefined) throw new ToolError(`${name}() got an unexpected keyword argument '${extra}'`);
  };
  if (name === 'echo') {
    expect(['text']);
    return given.get('text')!;
  }
  expect(['a', 'b']);
  const a = given.get('a');
  const b = given.get('b');
  if (!(a instanceof JsonNumber) || !(b instanceof JsonNumber)) throw new ToolError('unsupported operand type(s) for +');
  return pythonSum(a, b);
}

const ALGORITHMS = new Set<string>(['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87']);

/** `bytes.fromhex`: either case, whitespace between bytes. Throws on anything else. */
function fromHex(text: JsonValue | undefined): Uint8Array {
  if (typeof text !== 'string') throw new Error('not a string');
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) throw new Error('non-hexadecimal number found in fromhex()');
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

function sha3(text: string): Uint8Array {
  return createHash('sha3-256').update(text, 'utf8').digest();
}

/** Verifies `signature` over the SHA3-256 of `signed` with a key and algorithm taken from the message itself. */
async function verifyWith(algorithm: JsonValue | undefined, publicKey: JsonValue | undefined, signed: string, signature: JsonValue | undefined): Promise<boolean> {
  if (typeof algorithm !== 'string' || !ALGORITHMS.has(algorithm)) throw new Error(`Unsupported algorithm: ${String(algorithm)}`);
  const key = new PeerIdentity(algorithm as Algorithm, fromHex(publicKey));
  return key.verifyingKey.verify(sha3(signed), fromHex(signature), new Uint8Array(0));
}

/** A session of the standalone server: created when, which nonces it saw. Never bound to a key. */
interface Session {
  createdAt: number;
  nonces: Set<string>;
}

/** What answers a request: status, JSON value (or raw text), and whether to sign it. */
interface Answer {
  status: number;
  body: JsonObject | string;
  sign: boolean;
}

const json = (entries: [string, JsonValue][]): JsonObject => new Map(entries);
const rpcError = (id: JsonValue, code: number, message: string): JsonObject =>
  json([
    ['jsonrpc', '2.0'],
    ['id', id],
    ['error', json([['code', new JsonNumber(String(code))], ['message', message]])],
  ]);
const INTERNAL = (): Answer => ({ status: 500, body: json([['error', 'Internal server error']]), sign: false });

/** Starts a stand-in on 127.0.0.1 (a port the system picks). */
export async function startPythonServer(options: PythonServerOptions): Promise<PythonServerStandIn> {
  const identity = options.identity;
  const flavour = options.flavour ?? 'standalone';
  const nowMicros = options.nowMicros ?? (() => Date.now() * 1000 + Number(process.hrtime.bigint() % 1000n));
  const sessions = new Map<string, Session>();
  const requests: StandInRequest[] = [];
  let connections = 0;
  const sockets = new Set<Socket>();

  /** `_pqc` of an answer: the message without `_pqc`, canonical, SHA3-256, ML-DSA with an empty context. */
  async function signed(message: JsonObject): Promise<JsonObject> {
    const bare: JsonObject = new Map(message);
    bare.delete('_pqc');
    const signature = Buffer.from(await identity.sign(sha3(canonicalJson(bare)), new Uint8Array(0))).toString('hex');
    const out: JsonObject = new Map(bare);
    out.set(
      '_pqc',
      json([
        ['signer_did', identity.did],
        ['algorithm', identity.algorithm],
        ['timestamp', pythonIsoformat(nowMicros())],
        ['nonce', randomBytes(16).toString('hex')],
        ['signature', signature],
        ['public_key', identity.publicKeyHex],
      ]),
    );
    return out;
  }

  async function handshake(data: JsonObject): Promise<JsonObject> {
    const field = (key: string) => {
      if (!data.has(key)) throw new Error(`KeyError: '${key}'`);
      return data.get(key)!;
    };
    const [did, key, algorithm, timestamp, nonce, signature] = ['client_did', 'client_public_key', 'algorithm', 'timestamp', 'nonce', 'signature'].map(field);
    if (!(await verifyWith(algorithm, key, `${String(did)}:${String(nonce)}:${String(timestamp)}`, signature))) throw new Error('HandshakeError: invalid client signature');
    const sessionId = randomUUID().replace(/-/g, '');
    const serverNonce = randomBytes(16).toString('hex');
    sessions.set(sessionId, { createdAt: Date.now(), nonces: new Set() });
    const proof = Buffer.from(await identity.sign(sha3(`${identity.did}:${String(nonce)}:${serverNonce}:${sessionId}`), new Uint8Array(0))).toString('hex');
    return json([
      ['type', 'pqc_handshake_response'],
      ['server_did', identity.did],
      ['server_public_key', identity.publicKeyHex],
      ['algorithm', identity.algorithm],
      ['client_nonce', nonce as JsonValue],
      ['server_nonce', serverNonce],
      ['signature', proof],
      ['session_id', sessionId],
    ]);
  }

  /** The JSON-RPC methods both servers answer (no `initialize`). */
  function dispatch(message: JsonObject): JsonObject {
    const id = message.has('id') ? message.get('id')! : null;
    const method = message.get('method');
    const paramsValue = message.get('params') ?? new Map<string, JsonValue>();
    if (!(paramsValue instanceof Map)) throw new Error("AttributeError: 'list' object has no attribute 'get'");
    if (method === 'tools/list') {
      const tools = TOOL_DESCRIPTIONS.map(([name, description]) => json([['name', name], ['description', description]]));
      return json([['jsonrpc', '2.0'], ['id', id], ['result', json([['tools', tools]])]]);
    }
    if (method === 'tools/call') {
      const name = paramsValue.get('name');
      if (!TOOL_DESCRIPTIONS.some(([n]) => n === name)) return rpcError(id, -32601, `Unknown tool: ${String(name ?? '')}`);
      try {
        return json([['jsonrpc', '2.0'], ['id', id], ['result', json([['content', callTool(String(name), paramsValue.get('arguments'))]])]]);
      } catch (err) {
        if (err instanceof ToolError) return rpcError(id, -32000, `Tool error: ${err.message}`);
        throw err;
      }
    }
    return rpcError(id, -32601, `Unknown method: ${String(method ?? '')}`);
  }

  /** `PQCMCPServer.run()`'s answer to a request. */
  async function standalone(method: string, path: string, body: string): Promise<Answer> {
    if (method !== 'POST' || body === '') return { status: 200, body: json([['status', 'PQC MCP Server running']]), sign: false };
    try {
      const data = parseLossless(body);
      if (!(data instanceof Map)) throw new Error("AttributeError: 'list' object has no attribute 'get'");
      if (path === '/handshake' || data.get('type') === 'pqc_handshake_request') return { status: 200, body: await handshake(data), sign: false };
      const envelope = data.get('_pqc');
      if (!(envelope instanceof Map) || envelope.size === 0) {
        return { status: 200, body: rpcError(data.get('id') ?? null, -32600, 'Missing _pqc signature envelope'), sign: false };
      }
      const bare: JsonObject = new Map(data);
      bare.delete('_pqc');
      if (!(await verifyWith(envelope.get('algorithm'), envelope.get('public_key'), canonicalJson(bare), envelope.get('signature')))) throw new Error('SignatureVerificationError');
      const session = sessions.get(String(envelope.get('session_id')));
      if (session) {
        if (Date.now() - session.createdAt > 3_600_000) throw new Error('SessionExpiredError');
        const nonce = String(envelope.get('nonce'));
        if (session.nonces.has(nonce)) throw new Error('ReplayAttackError');
        session.nonces.add(nonce);
      }
      return { status: 200, body: dispatch(bare), sign: true };
    } catch {
      return INTERNAL();
    }
  }

  /** The Starlette app of the captures behind `PQCMiddleware`, then the middleware's signing. */
  async function asgi(method: string, path: string, body: string): Promise<Answer> {
    if (method === 'POST') {
      let data: JsonValue | undefined;
      try {
        data = parseLossless(body);
      } catch {
        data = undefined; // not JSON: passed on unverified
      }
      if (data instanceof Map && data.has('_pqc')) {
        const envelope = data.get('_pqc');
        let error = 'None';
        let valid = false;
        if (!(envelope instanceof Map) || envelope.size === 0) error = 'No _pqc envelope';
        else {
          const bare: JsonObject = new Map(data);
          bare.delete('_pqc');
          try {
            valid = await verifyWith(envelope.get('algorithm'), envelope.get('public_key'), canonicalJson(bare), envelope.get('signature'));
          } catch (err) {
            error = (err as Error).message;
          }
        }
        if (!valid) return { status: 403, body: json([['error', `PQC signature verification failed: ${error}`]]), sign: false };
      }
    }
    const routes: Record<string, string> = { '/handshake': 'POST', '/mcp': 'POST', '/health': 'GET' };
    if (!(path in routes)) return { status: 404, body: 'Not Found', sign: false };
    if (routes[path] !== method) return { status: 405, body: 'Method Not Allowed', sign: false };
    if (path === '/health') return { status: 200, body: json([['status', 'ok']]), sign: true };
    let data: JsonValue;
    try {
      data = parseLossless(body);
    } catch {
      return { status: 500, body: 'Internal Server Error', sign: false };
    }
    if (!(data instanceof Map)) return { status: 500, body: 'Internal Server Error', sign: false };
    if (path === '/handshake') {
      try {
        return { status: 200, body: await handshake(data), sign: true };
      } catch (err) {
        return { status: 401, body: json([['error', `handshake failed: ${(err as Error).message}`]]), sign: true };
      }
    }
    const bare: JsonObject = new Map(data);
    bare.delete('_pqc');
    try {
      return { status: 200, body: dispatch(bare), sign: true };
    } catch {
      return { status: 500, body: 'Internal Server Error', sign: false };
    }
  }

  const REASONS: Record<number, string> = { 200: 'OK', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 500: 'Internal Server Error' };

  /** The bytes of an answer, as each server writes them. */
  async function render(answer: Answer, close: boolean): Promise<Buffer> {
    let text: string;
    let type = 'application/json';
    if (typeof answer.body === 'string') {
      text = answer.body;
      type = 'text/plain; charset=utf-8';
    } else {
      const message = answer.sign ? await signed(answer.body) : answer.body;
      text = pythonDumps(message);
      if (options.tamper) text = await options.tamper(text, message);
    }
    const body = Buffer.from(text, 'utf8');
    const status = `HTTP/1.1 ${answer.status} ${REASONS[answer.status] ?? 'Unknown'}\r\n`;
    const headers =
      flavour === 'standalone'
        ? `Content-Type: ${type}\r\nContent-Length: ${body.length}\r\n`
        : `date: ${new Date(nowMicros() / 1000).toUTCString()}\r\nserver: uvicorn\r\ncontent-type: ${type}\r\ncontent-length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}`;
    return Buffer.concat([Buffer.from(`${status}${headers}\r\n`, 'latin1'), body]);
  }

  const server: Server = createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    let busy = false;
    let waitingBody: { method: string; path: string; headers: [string, string][]; length: number } | undefined;

    const respond = async (method: string, path: string, headers: [string, string][], body: string) => {
      requests.push({ connection, method, path, headers, body });
      const lower = new Map(headers.map(([k, v]) => [k.toLowerCase(), v]));
      const close = flavour === 'standalone' || (lower.get('connection') ?? '').toLowerCase() === 'close';
      const answer = flavour === 'standalone' ? await standalone(method, path, body) : await asgi(method, path, body);
      const bytes = await render(answer, close);
      if (socket.destroyed) return;
      if (close) socket.end(bytes);
      else socket.write(bytes);
    };

    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          if (waitingBody) {
            // The standalone server's single read(n): whatever arrived after the head, or the next chunk.
            if (buffer.length === 0) return;
            const take = buffer.subarray(0, Math.min(waitingBody.length, buffer.length));
            buffer = buffer.subarray(take.length);
            const { method, path, headers } = waitingBody;
            waitingBody = undefined;
            await respond(method, path, headers, take.toString('utf8'));
            return;
          }
          const end = buffer.indexOf('\r\n\r\n');
          if (end === -1) return;
          const lines = buffer.subarray(0, end).toString('latin1').split('\r\n');
          const [method = '', target = '/'] = lines[0]!.split(' ');
          const headers = lines.slice(1).map((line) => {
            const colon = line.indexOf(':');
            return [line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string];
          });
          const lower = new Map(headers.map(([k, v]) => [k.toLowerCase(), v]));
          const path = target.split('?')[0]!;
          buffer = buffer.subarray(end + 4);
          const length = Number(lower.get('content-length') ?? 0);
          if (flavour === 'standalone') {
            if (!(length > 0)) {
              await respond(method, path, headers, '');
              return;
            }
            waitingBody = { method, path, headers, length };
            continue;
          }
          // uvicorn: the whole body (de-chunked), then the next request on the same connection.
          let body: Buffer;
          if ((lower.get('transfer-encoding') ?? '').toLowerCase() === 'chunked') {
            const chunks: Buffer[] = [];
            let at = 0;
            for (;;) {
              const eol = buffer.indexOf('\r\n', at);
              if (eol === -1) return void (buffer = Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), buffer]));
              const size = Number.parseInt(buffer.subarray(at, eol).toString('latin1'), 16);
              if (size === 0) {
                buffer = buffer.subarray(eol + 4);
                break;
              }
              chunks.push(buffer.subarray(eol + 2, eol + 2 + size));
              at = eol + 2 + size + 2;
            }
            body = Buffer.concat(chunks);
          } else {
            if (buffer.length < length) {
              buffer = Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), buffer]);
              return;
            }
            body = buffer.subarray(0, length);
            buffer = buffer.subarray(length);
          }
          await respond(method, path, headers, body.toString('utf8'));
          if (socket.destroyed || socket.writableEnded) return;
        }
      } finally {
        busy = false;
        if (buffer.length > 0 && !socket.writableEnded && !socket.destroyed) void pump();
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (flavour === 'standalone' && requests.some((r) => r.connection === connection)) return; // one request per connection
      buffer = Buffer.concat([buffer, chunk]);
      void pump();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    mcpUrl: `${url}/mcp`,
    requests,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
