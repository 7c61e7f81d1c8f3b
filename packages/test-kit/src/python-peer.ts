/**
 * The Python predecessor, `pqc-mcp-transport` 0.1.0, as the tests meet it without Python: the exact HTTP exchanges its
 * client had with its own servers (fixtures/python-peer/, captured on loopback; data only, no code of the package),
 * a replayer that sends those requests byte for byte over a real socket to one of our servers, and the checks a
 * Python client's answers must pass. Its wire behaviour, as observed:
 *
 * - the client POSTs the handshake to `<server_url>/handshake` and every JSON-RPC message to `<server_url>/mcp`,
 *   with `Accept: *\/*`, no `initialize`, no `Mcp-Session-Id`, no `PQC-Session`, and reads one JSON body;
 * - its bodies are compact JSON in raw UTF-8 (`ensure_ascii=False`, httpx 0.28), numbers as Python writes them
 *   (`7.0`, `1e+16`), timestamps as `datetime.isoformat()` (`+00:00`, microseconds, no fraction when they are 0);
 * - v1 envelopes (docs/PROTOCOL.md §7): only the message without `_pqc` is signed (SHA3-256 of its canonical form,
 *   ML-DSA with an empty context); `_pqc.session_id` is added after signing, so a replay may set it to the session our
 *   server issued for the replayed handshake without touching a signature.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import {
  AgentIdentity,
  JsonNumber,
  MessageSigner,
  PQCHandshake,
  PeerIdentity,
  canonicalJson,
  parseLossless,
  type Algorithm,
  type JsonObject,
  type JsonValue,
  type PQCSession,
  type PendingHandshake,
} from '@pqc-mcp/core';

// ---------------------------------------------------------------------------------------------------------------
// The captured sessions

/** One identity of a capture (fixed test seeds). */
export interface PythonIdentity {
  did: string;
  algorithm: Algorithm;
  public_key: string;
  seed: string;
}

/** One HTTP exchange as captured: request and response exactly as they were on the wire. */
export interface PythonExchange {
  /** e.g. `handshake`, `tools/list`, `tools/call add {"a": 7.0, "b": 3.5}`. */
  name: string;
  request: { method: string; path: string; http_version: string; headers: [string, string][]; body: string };
  response: { status_line: string; headers: [string, string][]; body: string; connection_closed_first_by: 'client' | 'server' };
  /** What Python itself computed: the handshake strings it signed, the canonical forms of the messages. */
  python: {
    handshake_request_signed_string?: string;
    handshake_response_signed_string?: string;
    request_canonical?: string;
    response_canonical?: string;
  };
}

/** A captured session: the Python client against one of the package's servers. */
export interface PythonSession {
  about: string;
  captured_at: string;
  peer: Record<string, string>;
  identities: { server: PythonIdentity; client: PythonIdentity };
  /** The handshake first, then tools/list and the tools/call exchanges. */
  exchanges: PythonExchange[];
}

/** The two captures: against `PQCMCPServer.run()` (standalone) and against `PQCMiddleware` under uvicorn (asgi). */
export type PythonServerKind = 'standalone' | 'asgi';

const FIXTURES = path.resolve(__dirname, '../fixtures/python-peer');

/** A captured session, parsed (a fresh copy each call). */
export function readPythonSession(kind: PythonServerKind): PythonSession {
  return JSON.parse(readFileSync(path.join(FIXTURES, `${kind}-session.json`), 'utf8')) as PythonSession;
}

/** The session's identities as our types: the client with its seed (to sign new requests as it), the server's key. */
export function pythonIdentities(session: PythonSession): { client: AgentIdentity; server: PeerIdentity } {
  const { client, server } = session.identities;
  return {
    client: AgentIdentity.fromSeed(client.seed, { algorithm: client.algorithm, name: 'python-client' }),
    server: new PeerIdentity(server.algorithm, server.public_key, { did: server.did }),
  };
}

/** The captured handshake request, parsed. */
export function capturedHandshake(session: PythonSession): { client_did: string; nonce: string; timestamp: string; [key: string]: unknown } {
  return JSON.parse(session.exchanges[0]!.request.body) as { client_did: string; nonce: string; timestamp: string };
}

/** The instant of a capture (its handshake's timestamp, epoch ms): the clock a server replaying it must be on. */
export function pythonCaptureTime(session: PythonSession): number {
  return Date.parse(capturedHandshake(session).timestamp);
}

/** The `_pqc.session_id` the captured client messages carry (the session the Python server had issued). */
export function capturedSessionId(session: PythonSession): string {
  return (JSON.parse(session.exchanges[0]!.response.body) as { session_id: string }).session_id;
}

// ---------------------------------------------------------------------------------------------------------------
// Python's JSON forms

/**
 * `json.dumps(value)` with CPython's defaults (`", "` and `": "`, ASCII `\uXXXX` escapes, insertion order): how the
 * Python servers write their bodies. Numbers of a lossless tree keep Python's reading (`7.0` stays `7.0`).
 */
export function pythonDumps(value: unknown): string {
  if (value instanceof Map) {
    return `{${[...value].map(([k, v]) => `${canonicalJson(String(k))}: ${pythonDumps(v)}`).join(', ')}}`;
  }
  if (Array.isArray(value)) return `[${value.map(pythonDumps).join(', ')}]`;
  if (value !== null && typeof value === 'object' && !(value instanceof JsonNumber)) {
    return `{${Object.entries(value).map(([k, v]) => `${canonicalJson(k)}: ${pythonDumps(v)}`).join(', ')}}`;
  }
  return canonicalJson(value);
}

/** A string as `json.dumps(..., ensure_ascii=False)` writes it: only `"`, `\` and control characters escaped. */
function unicodeString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`: how httpx 0.28 writes the Python client's bodies
 * (compact, raw UTF-8, DEL and U+2028 as they are).
 */
export function pythonCompactJson(value: unknown): string {
  if (value instanceof Map) return `{${[...value].map(([k, v]) => `${unicodeString(String(k))}:${pythonCompactJson(v)}`).join(',')}}`;
  if (Array.isArray(value)) return `[${value.map(pythonCompactJson).join(',')}]`;
  if (typeof value === 'string') return unicodeString(value);
  if (value !== null && typeof value === 'object' && !(value instanceof JsonNumber)) {
    return `{${Object.entries(value).map(([k, v]) => `${unicodeString(k)}:${pythonCompactJson(v)}`).join(',')}}`;
  }
  return canonicalJson(value);
}

/**
 * `datetime.now(timezone.utc).isoformat()` of an instant given in microseconds since the epoch:
 * `2026-11-30T16:06:10.441350+00:00`, and `2026-11-30T16:06:10+00:00` when the microseconds are 0.
 */
export function pythonIsoformat(epochMicros: number): string {
  const micros = ((epochMicros % 1_000_000) + 1_000_000) % 1_000_000;
  const seconds = new Date((epochMicros - micros) / 1000).toISOString().slice(0, 19);
  return `${seconds}${micros === 0 ? '' : `.${String(micros).padStart(6, '0')}`}+00:00`;
}

/** 16 random bytes as hex (`os.urandom(16).hex()`). */
function pythonNonce(): string {
  return randomBytes(16).toString('hex');
}

/** SHA3-256 of a UTF-8 string. */
function sha3(text: string): Uint8Array {
  return createHash('sha3-256').update(text, 'utf8').digest();
}

/**
 * A handshake request as the Python client writes it (keys in its order, compact, raw UTF-8), signed with `identity`:
 * SHA3-256 of `"{client_did}:{nonce}:{timestamp}"`, ML-DSA with an empty context. For requests the captures do not
 * have (a timestamp without microseconds, a second session of the same client).
 */
export async function pythonHandshakeRequest(identity: AgentIdentity, timestamp: string, nonce = pythonNonce()): Promise<string> {
  const digest = sha3(`${identity.did}:${nonce}:${timestamp}`);
  const signature = Buffer.from(await identity.sign(digest, new Uint8Array(0))).toString('hex');
  return pythonCompactJson({
    type: 'pqc_handshake_request',
    client_did: identity.did,
    client_public_key: identity.publicKeyHex,
    algorithm: identity.algorithm,
    timestamp,
    nonce,
    signature,
  });
}

/**
 * A JSON-RPC message as the Python client signs and sends it: `message` (a text, so that numbers keep Python's forms)
 * with a v1 `_pqc` whose `session_id` is added after signing.
 */
export async function pythonClientMessage(identity: AgentIdentity, message: string, options: { sessionId?: string; timestamp: string; nonce?: string }): Promise<string> {
  const tree = parseLossless(message) as JsonObject;
  const digest = sha3(canonicalJson(tree));
  const envelope = new Map<string, JsonValue>([
    ['signer_did', identity.did],
    ['algorithm', identity.algorithm],
    ['timestamp', options.timestamp],
    ['nonce', options.nonce ?? pythonNonce()],
    ['signature', Buffer.from(await identity.sign(digest, new Uint8Array(0))).toString('hex')],
    ['public_key', identity.publicKeyHex],
  ]);
  if (options.sessionId !== undefined) envelope.set('session_id', options.sessionId);
  const out: JsonObject = new Map(tree);
  out.set('_pqc', envelope);
  return pythonCompactJson(out);
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP/1.1 over a socket, every byte under the test's control

/** A response as read from the socket. */
export interface RawHttpResponse {
  statusLine: string;
  status: number;
  /** Header lines in order, names as sent. */
  headers: [string, string][];
  /** The body, de-chunked and decoded (gzip, deflate) as httpx would. */
  text: string;
  /** Whether the server closed the connection after this response (only checked with `detectClose`). */
  closedByServer: boolean;
}

/** The value of a header (case-insensitive, last wins), or undefined. */
export function headerValue(headers: readonly [string, string][], name: string): string | undefined {
  const lower = name.toLowerCase();
  let value: string | undefined;
  for (const [k, v] of headers) if (k.toLowerCase() === lower) value = v;
  return value;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** The body bytes of a complete response in `data` after its head, or undefined while incomplete. */
function completeBody(headers: [string, string][], rest: Buffer, ended: boolean): Buffer | undefined {
  if ((headerValue(headers, 'transfer-encoding') ?? '').toLowerCase().includes('chunked')) {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol === -1) return undefined;
      const size = Number.parseInt(rest.subarray(at, eol).toString('latin1').split(';')[0]!, 16);
      if (Number.isNaN(size)) throw new Error('a malformed chunk size');
      if (size === 0) return rest.indexOf('\r\n\r\n', eol) !== -1 || rest.subarray(eol, eol + 4).equals(Buffer.from('\r\n\r\n')) ? Buffer.concat(chunks) : undefined;
      if (rest.length < eol + 2 + size + 2) return undefined;
      chunks.push(rest.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  }
  const length = headerValue(headers, 'content-length');
  if (length !== undefined) return rest.length >= Number(length) ? rest.subarray(0, Number(length)) : undefined;
  return ended ? rest : undefined;
}

/**
 * Sends `request` (the whole request, head and body) on a new TCP connection in one write and reads one response.
 * With `detectClose`, waits up to `closeGraceMs` after the response for the server to close the connection.
 */
export function rawHttpExchange(url: URL, request: Uint8Array, options: { detectClose?: boolean; closeGraceMs?: number; timeoutMs?: number } = {}): Promise<RawHttpResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port || 80), url.hostname);
    let data = Buffer.alloc(0);
    let head: { statusLine: string; headers: [string, string][]; bodyStart: number } | undefined;
    let response: RawHttpResponse | undefined;
    let ended = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const timeout = setTimeout(() => finish(new Error(`no complete answer within ${options.timeoutMs ?? 20_000} ms`)), options.timeoutMs ?? 20_000);
    const finish = (err?: Error) => {
      clearTimeout(timeout);
      if (graceTimer) clearTimeout(graceTimer);
      socket.destroy();
      if (err) reject(err);
      else resolve(response!);
    };
    const tryParse = () => {
      if (!head) {
        const end = data.indexOf(CRLF2);
        if (end === -1) return;
        const lines = data.subarray(0, end).toString('latin1').split('\r\n');
        const headers = lines.slice(1).map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string];
        });
        head = { statusLine: lines[0]!, headers, bodyStart: end + 4 };
      }
      if (response) return;
      let body = completeBody(head.headers, data.subarray(head.bodyStart), ended);
      if (body === undefined) return;
      const encoding = (headerValue(head.headers, 'content-encoding') ?? '').toLowerCase();
      if (encoding === 'gzip') body = gunzipSync(body);
      else if (encoding === 'deflate') body = inflateSync(body);
      response = {
        statusLine: head.statusLine,
        status: Number(head.statusLine.split(' ')[1]),
        headers: head.headers,
        text: new TextDecoder('utf-8', { fatal: true }).decode(body),
        closedByServer: ended,
      };
      if (!options.detectClose || ended) finish();
      else graceTimer = setTimeout(() => finish(), options.closeGraceMs ?? 300);
    };
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      try {
        tryParse();
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('end', () => {
      ended = true;
      if (response) {
        response.closedByServer = true;
        finish();
        return;
      }
      try {
        tryParse();
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (!response) finish(new Error(`the server closed the connection before a complete answer (${data.length} bytes read)`));
    });
    socket.on('error', (err) => finish(err));
    socket.write(request);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Replaying the Python client

/** Where the replayed Python client sends its requests. */
export interface PythonClientTarget {
  /** The `server_url` the Python client is given: it posts to `<server_url>/handshake` and `<server_url>/mcp`. */
  serverUrl: string | URL;
  /** Another handshake URL (as `run_client.py --handshake-url` reroutes it); default `<server_url>/handshake`. */
  handshakeUrl?: string | URL;
  /** Another message URL; default `<server_url>/mcp`. */
  mcpUrl?: string | URL;
}

/** A request as it went out, and what came back. */
export interface ReplayedExchange {
  exchange: PythonExchange;
  sent: { url: URL; headers: [string, string][]; body: string };
  response: RawHttpResponse;
}

/** The captured request of `exchange` with `body`, as bytes for `url`: the head as captured, `Host` and `Content-Length` set for it. */
export function rawPythonRequest(exchange: PythonExchange, url: URL, body: string, extraHeaders: [string, string][] = []): { bytes: Buffer; headers: [string, string][] } {
  const bodyBytes = Buffer.from(body, 'utf8');
  const headers: [string, string][] = exchange.request.headers.map(([name, value]) => {
    if (name.toLowerCase() === 'host') return [name, url.host];
    if (name.toLowerCase() === 'content-length') return [name, String(bodyBytes.length)];
    return [name, value];
  });
  headers.push(...extraHeaders);
  const head = `${exchange.request.method} ${url.pathname}${url.search} ${exchange.request.http_version}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), bodyBytes]), headers };
}

/** The URLs the Python client posts to, for a target. */
export function pythonClientUrls(target: PythonClientTarget): { handshake: URL; mcp: URL } {
  const base = String(target.serverUrl).replace(/\/+$/, '');
  return {
    handshake: new URL(String(target.handshakeUrl ?? `${base}/handshake`)),
    mcp: new URL(String(target.mcpUrl ?? `${base}/mcp`)),
  };
}

/**
 * `_pqc.session_id` of a captured client message set to `sessionId`: the one member of the envelope rewritten, in
 * place, so every other byte (and the signature, which does not cover it) stays as captured.
 */
export function withSessionId(body: string, from: string, to: string): string {
  const needle = `"session_id":"${from}"`;
  const at = body.lastIndexOf(needle);
  if (at === -1 || body.indexOf(needle) !== at) throw new Error(`the captured message names its session ${from} not exactly once`);
  return `${body.slice(0, at)}"session_id":"${to}"${body.slice(at + needle.length)}`;
}

/** Sends one captured request (its body as given) to `url` over a new connection. */
export async function sendPythonRequest(exchange: PythonExchange, url: URL, body: string, options: { extraHeaders?: [string, string][]; detectClose?: boolean } = {}): Promise<ReplayedExchange> {
  const { bytes, headers } = rawPythonRequest(exchange, url, body, options.extraHeaders);
  const response = await rawHttpExchange(url, bytes, { detectClose: options.detectClose });
  return { exchange, sent: { url, headers, body }, response };
}

/**
 * Checks a handshake answer as a careful Python client would (and more: the server is pinned, its DID bound to its
 * key): HTTP 200, JSON, a v1 handshake response to this request. Resolves the v1 session it opened.
 */
export async function completePythonHandshake(requestBody: string, response: { status: number; text: string }, options: { client: AgentIdentity; serverDid?: string; now: () => number }): Promise<PQCSession> {
  if (response.status !== 200) throw new Error(`handshake answered HTTP ${response.status}: ${response.text.slice(0, 300)}`);
  const request = JSON.parse(requestBody) as { client_did: string; nonce: string; timestamp: string };
  const pending: PendingHandshake = {
    profile: 1,
    clientDid: request.client_did,
    serverDid: undefined,
    nonce: request.nonce,
    timestamp: request.timestamp,
    requestDigest: '',
    request: requestBody,
  };
  return PQCHandshake.complete(response.text, options.client, pending, { serverDid: options.serverDid, now: options.now });
}

/** The result of a replayed session. */
export interface PythonReplay {
  /** The v1 session our server opened for the replayed handshake. */
  session: PQCSession;
  /** Every exchange, the handshake first. */
  exchanges: ReplayedExchange[];
}

/**
 * Replays a captured Python client session against a server: the handshake exactly as captured, then each message
 * exactly as captured but for `_pqc.session_id`, set to the session the server issued. Each request goes on a new
 * connection, in one write, with the captured head (`Host` and `Content-Length` set for the target). The server's
 * clock must be the capture's (`pythonCaptureTime`). Throws when the handshake does not complete (`serverDid` pinned).
 */
export async function replayPythonClient(session: PythonSession, target: PythonClientTarget, options: { serverDid: string; now: () => number; detectClose?: boolean }): Promise<PythonReplay> {
  const urls = pythonClientUrls(target);
  const [handshake, ...messages] = session.exchanges;
  const first = await sendPythonRequest(handshake!, urls.handshake, handshake!.request.body, { detectClose: options.detectClose });
  const { client } = pythonIdentities(session);
  const opened = await completePythonHandshake(handshake!.request.body, first.response, { client, serverDid: options.serverDid, now: options.now });
  const from = capturedSessionId(session);
  const exchanges = [first];
  for (const exchange of messages) {
    exchanges.push(await sendPythonRequest(exchange, urls.mcp, withSessionId(exchange.request.body, from, opened.sessionId), { detectClose: options.detectClose }));
  }
  return { session: opened, exchanges };
}

// ---------------------------------------------------------------------------------------------------------------
// What a Python client's answers must be

/** How the server shapes a tool result: MCP's `CallToolResult` (ours) or the predecessor's `{"content": value}`. */
export type ResultShape = 'mcp' | 'python';

/** The check of one answer: what was asked, and what is wrong with the answer (nothing, when it passes). */
export interface AnswerCheck {
  name: string;
  problems: string[];
  /** The verified message without `_pqc` (a lossless tree), when it verified. */
  message?: JsonObject;
}

function jsonText(value: JsonValue | undefined): string {
  return value === undefined ? 'nothing' : canonicalJson(value);
}

/** Python's reading of `a + b` for two JSON numbers: an int when both are ints, else `repr(float)`. */
export function pythonSum(a: JsonNumber, b: JsonNumber): JsonNumber {
  if (a.isInteger && b.isInteger) return new JsonNumber((BigInt(a.lexeme) + BigInt(b.lexeme)).toString());
  // A float: toExponential() writes the shortest digits that read back the same double, and never an int lexeme.
  return new JsonNumber((a.toNumber() + b.toNumber()).toExponential());
}

/** The tool's value of a result, in either shape: the number or string the tool computed. */
function toolValue(result: JsonValue | undefined, shape: ResultShape): { value?: JsonValue; problem?: string } {
  if (!(result instanceof Map)) return { problem: `result is ${jsonText(result)}` };
  const content = result.get('content');
  if (shape === 'python') return content === undefined ? { problem: 'result has no content' } : { value: content };
  if (result.get('isError') === true) return { problem: `isError result ${jsonText(result)}` };
  const first = Array.isArray(content) ? content[0] : undefined;
  const text = first instanceof Map && first.get('type') === 'text' ? first.get('text') : undefined;
  return typeof text === 'string' ? { value: text } : { problem: `result content is ${jsonText(content)}` };
}

/**
 * The problems of one answer to a captured request, as the Python client reads it (HTTP 200, `application/json`, one
 * JSON object) and as a strict one must: a v1 envelope that verifies under the pinned server key, the request's id,
 * and the value the request asked for (`add` the sum, `echo` the text, `tools/list` both tools, an unknown tool a
 * JSON-RPC error).
 */
export async function checkPythonAnswer(
  requestBody: string,
  response: { status: number; headers: readonly [string, string][]; text: string },
  options: { server: PeerIdentity; now: () => number; shape: ResultShape; name?: string },
): Promise<AnswerCheck> {
  const request = parseLossless(requestBody) as JsonObject;
  const name = options.name ?? String(request.get('method'));
  const problems: string[] = [];
  const check: AnswerCheck = { name, problems };
  if (response.status !== 200) problems.push(`HTTP ${response.status}, not 200`);
  const type = (headerValue(response.headers, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') problems.push(`content-type ${type || 'none'}, not application/json`);
  let tree: JsonValue;
  try {
    tree = parseLossless(response.text);
  } catch (err) {
    problems.push(`not JSON: ${(err as Error).message}: ${response.text.slice(0, 200)}`);
    return check;
  }
  if (!(tree instanceof Map)) {
    problems.push(`not one JSON object: ${response.text.slice(0, 200)}`);
    return check;
  }
  const envelope = tree.get('_pqc');
  if (!(envelope instanceof Map)) {
    problems.push(`unsigned: ${response.text.slice(0, 300)}`);
    return check;
  }
  if (envelope.has('v')) problems.push('a v2 envelope (the Python client verifies only v1)');
  if (envelope.get('public_key') !== options.server.publicKeyHex) problems.push('_pqc.public_key is not the server key (the Python client verifies with it)');
  const verified = await MessageSigner.verifyMessage(response.text, { peer: options.server, profiles: [1], now: options.now });
  if (!verified.valid) problems.push(`does not verify: ${verified.reason} (${verified.detail})`);
  const message: JsonObject = new Map(tree);
  message.delete('_pqc');
  check.message = message;
  if (jsonText(message.get('id')) !== jsonText(request.get('id'))) problems.push(`id ${jsonText(message.get('id'))}, not ${jsonText(request.get('id'))}`);

  const method = request.get('method');
  const params = request.get('params');
  const result = message.get('result');
  const error = message.get('error');
  if (method === 'tools/list') {
    const tools = result instanceof Map ? result.get('tools') : undefined;
    const names = Array.isArray(tools) ? tools.map((t) => (t instanceof Map ? t.get('name') : undefined)) : [];
    if (!names.includes('echo') || !names.includes('add')) problems.push(`tools/list lacks echo or add: ${jsonText(result ?? error)}`);
    return check;
  }
  if (method !== 'tools/call' || !(params instanceof Map)) {
    problems.push(`a request the check does not know: ${jsonText(request)}`);
    return check;
  }
  const tool = params.get('name');
  const args = params.get('arguments');
  if (tool === 'add' || tool === 'echo') {
    const { value, problem } = toolValue(result, options.shape);
    if (problem !== undefined) {
      problems.push(`${tool}: ${problem}${error !== undefined ? ` (error ${jsonText(error)})` : ''}`);
      return check;
    }
    const a = args instanceof Map ? args.get('a') : undefined;
    const b = args instanceof Map ? args.get('b') : undefined;
    const text = args instanceof Map ? args.get('text') : undefined;
    if (tool === 'echo' && value !== text) problems.push(`echo answered ${jsonText(value)}, not ${jsonText(text)}`);
    if (tool === 'add' && a instanceof JsonNumber && b instanceof JsonNumber) {
      if (options.shape === 'python') {
        // Exactly Python's number: 10.0 for 7.0 + 3.0, 10 for 7 + 3, 1e+16 for 1e16 + 1.0.
        const sum = jsonText(pythonSum(a, b));
        if (jsonText(value) !== sum) problems.push(`add answered ${jsonText(value)}, not ${sum}`);
      } else if (typeof value !== 'string' || Number(value) !== a.toNumber() + b.toNumber()) {
        problems.push(`add answered ${jsonText(value)}, not the text of ${a.toNumber() + b.toNumber()}`);
      }
    }
    return check;
  }
  // An unknown tool: a JSON-RPC error naming it (-32601 from the predecessor, -32602 from the MCP SDK, as MCP says).
  const code = error instanceof Map ? error.get('code') : undefined;
  const messageText = error instanceof Map ? error.get('message') : undefined;
  const expected = options.shape === 'python' ? -32601 : -32602;
  if (!(code instanceof JsonNumber) || code.toNumber() !== expected || typeof messageText !== 'string' || !messageText.includes(String(tool))) {
    problems.push(`unknown tool ${String(tool)}: expected a JSON-RPC error ${expected} naming it, got ${jsonText(error ?? result)}`);
  }
  return check;
}

/** Checks every answer of a replay (the handshake completed already): the problems of each. */
export async function checkPythonReplay(replay: PythonReplay, options: { server: PeerIdentity; now: () => number; shape: ResultShape }): Promise<AnswerCheck[]> {
  const checks: AnswerCheck[] = [];
  for (const { exchange, sent, response } of replay.exchanges.slice(1)) {
    checks.push(await checkPythonAnswer(sent.body, response, { ...options, name: exchange.name }));
  }
  return checks;
}

/** The checks that found a problem (what a test expects to be empty). */
export function failedChecks(checks: readonly AnswerCheck[]): { name: string; problems: string[] }[] {
  return checks.filter((c) => c.problems.length > 0).map(({ name, problems }) => ({ name, problems }));
}

/** A fixed clock (epoch ms). */
export function fixedClock(ms: number): () => number {
  return () => ms;
}
