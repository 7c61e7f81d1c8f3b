/**
 * A raw protocol client for the suites: handshake, sign, send, verify, every byte under the test's control. It uses
 * only `@pqc-mcp/core`'s public API and checks the answers itself (session, `in_reply_to`, `mcp_session_id`), so the
 * suites test the server against an independent reading of docs/PROTOCOL.md, not against core's own client.
 */
import {
  AgentIdentity,
  MessageSigner,
  PQCHandshake,
  PeerIdentity,
  PQC_ENVELOPE_HEADER,
  PQC_SESSION_HEADER,
  parseLossless,
  type JsonValue,
  type PQCSession,
  type SignedMessage,
} from '@pqc-mcp/core';

/** The headers of an MCP POST. */
export const MCP_HEADERS: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** The MCP protocol version the legacy-era requests of the suites name. */
export const LEGACY_PROTOCOL_VERSION = '2025-06-18';

/** An MCP `initialize` request. */
export function initializeMessage(id: number): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: LEGACY_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'conformance', version: '1.0.0' } },
  };
}

/** The data of each event of an SSE body, and whether any event carried an `id:` field. */
export function sseEvents(text: string): { data: string[]; ids: boolean } {
  const data: string[] = [];
  let ids = false;
  for (const event of text.split(/\r?\n\r?\n/)) {
    const lines = event.split(/\r?\n/);
    if (lines.some((l) => l === 'id' || l.startsWith('id:'))) ids = true;
    const joined = lines
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (joined.trim() !== '') data.push(joined);
  }
  return { data, ids };
}

/** The JSON-RPC messages of a response body (JSON or SSE), as texts. */
export async function messageTexts(response: Response): Promise<string[]> {
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  if (type.startsWith('text/event-stream')) {
    const { data, ids } = sseEvents(text);
    if (ids) throw new Error('an SSE event carries an id: stream resumption is not part of the protocol (§4)');
    return data;
  }
  if (text.trim() === '') return [];
  const tree = JSON.parse(text) as unknown;
  return Array.isArray(tree) ? tree.map((m) => JSON.stringify(m)) : [text];
}

/** A plain object of a lossless tree (for assertions). */
export function plain(tree: JsonValue): unknown {
  return JSON.parse(JSON.stringify(tree, (_key, value: unknown) => (value instanceof Map ? Object.fromEntries(value) : typeof value === 'object' && value !== null && 'lexeme' in value ? Number((value as { lexeme: string }).lexeme) : value)));
}

export class RawClient {
  session!: PQCSession;
  mcpSessionId: string | undefined;
  readonly signer: MessageSigner;
  #nextId = 100;
  readonly #seen = new Set<string>();
  #peer: { session: PQCSession; peer: PeerIdentity } | undefined;

  constructor(
    readonly url: string,
    readonly identity: AgentIdentity,
    readonly serverDid: string,
  ) {
    this.signer = new MessageSigner(identity);
  }

  get handshakeUrl(): string {
    return new URL('pqc/handshake', this.url).href;
  }

  /** The path and query this client's POSTs are sent to (what `http.path` signs). */
  get path(): string {
    const url = new URL(this.url);
    return url.pathname + url.search;
  }

  async handshake(profile: 1 | 2 = 2): Promise<PQCSession> {
    const { request, pending } = await PQCHandshake.initiate(this.identity, { profile, serverDid: profile === 2 ? this.serverDid : undefined });
    const url = profile === 2 ? this.handshakeUrl : new URL('handshake', this.url).href;
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: request });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`handshake answered ${response.status}: ${text}`);
    this.session = await PQCHandshake.complete(text, this.identity, pending, { serverDid: this.serverDid });
    this.mcpSessionId = undefined;
    return this.session;
  }

  id(): number {
    return this.#nextId++;
  }

  /** Signs a message for a POST to `path` (default this client's), bound as §3 says. */
  sign(
    message: object | string,
    options: { now?: number; profile?: 1 | 2; sessionId?: string; path?: string; method?: string; mcpSessionId?: string | null; inReplyTo?: string } = {},
  ): Promise<SignedMessage> {
    const profile = options.profile ?? this.session.profile;
    return this.signer.signMessage(message, {
      sessionId: options.sessionId ?? this.session.sessionId,
      profile,
      now: options.now,
      inReplyTo: options.inReplyTo,
      http:
        profile === 2
          ? { method: options.method ?? 'POST', path: options.path ?? this.path, mcpSessionId: options.mcpSessionId !== undefined ? options.mcpSessionId : (this.mcpSessionId ?? null) }
          : undefined,
    });
  }

  /** POSTs a body, with this session's `PQC-Session` header (unless `headers` says otherwise). */
  post(body: string, headers: Record<string, string | undefined> = {}, url: string = this.url): Promise<Response> {
    const h: Record<string, string> = { ...MCP_HEADERS };
    if (this.session?.profile === 2) h[PQC_SESSION_HEADER] = this.session.sessionId;
    if (this.mcpSessionId) {
      h['mcp-session-id'] = this.mcpSessionId;
      h['mcp-protocol-version'] = LEGACY_PROTOCOL_VERSION;
    }
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined) {
        delete h[name];
        for (const key of Object.keys(h)) if (key.toLowerCase() === name.toLowerCase()) delete h[key];
      } else h[name] = value;
    }
    return fetch(url, { method: 'POST', headers: h, body });
  }

  /**
   * Verifies every message of an answer against the pinned server (this session, `in_reply_to` equal to
   * `inReplyTo`, a nonce not seen before, `mcp_session_id` equal to the response's header); returns them plain.
   */
  async verified(response: Response, inReplyTo: string | null): Promise<Record<string, unknown>[]> {
    const header = response.headers.get('mcp-session-id');
    const out: Record<string, unknown>[] = [];
    for (const text of await messageTexts(response)) {
      const result = await MessageSigner.verifyMessage(text, { peer: this.#pinned(), profiles: [this.session.profile] });
      if (!result.valid) throw new Error(`server message refused: ${result.reason} (${result.detail})`);
      const envelope = (JSON.parse(text) as { _pqc: Record<string, unknown> })._pqc;
      if (result.sessionId !== this.session.sessionId) throw new Error('a server message names another session');
      if (this.session.profile === 2 && (result.inReplyTo ?? null) !== inReplyTo) {
        throw new Error(`in_reply_to ${String(result.inReplyTo)} does not bind the request (${String(inReplyTo)})`);
      }
      if (this.session.profile === 2 && header !== null && envelope.mcp_session_id !== header) throw new Error('mcp_session_id does not match the header');
      if ('http' in envelope) throw new Error('a server message carries http');
      if (this.#seen.has(result.nonce!)) throw new Error('a server nonce repeats');
      this.#seen.add(result.nonce!);
      out.push(result.message!);
    }
    return out;
  }

  /**
   * The pinned server, its key prepared on the backend this client's identity uses (a test's stand-in backend, say),
   * as the session's own `peer` is on the default one.
   */
  #pinned(): PeerIdentity {
    const session = this.session;
    if (this.#peer?.session !== session) {
      const peer = new PeerIdentity(session.peerAlgorithm, session.peerPublicKey, { did: session.peerDid, backend: this.identity.backend });
      this.#peer = { session, peer };
    }
    return this.#peer.peer;
  }

  /** initialize + notifications/initialized, signed; leaves the MCP session id set. */
  async initialize(): Promise<Record<string, unknown>> {
    this.mcpSessionId = undefined;
    const signed = await this.sign(initializeMessage(this.id()));
    const response = await this.post(signed.text);
    if (response.status !== 200) throw new Error(`initialize answered ${response.status}: ${await response.text()}`);
    const id = response.headers.get('mcp-session-id') ?? undefined;
    const [result] = await this.verified(response, signed.nonce);
    this.mcpSessionId = id;
    const note = await this.sign({ jsonrpc: '2.0', method: 'notifications/initialized' });
    const ack = await this.post(note.text);
    const ackText = await ack.text();
    if (ack.status !== 202 || ackText !== '') throw new Error(`notifications/initialized answered ${ack.status}: ${ackText}`);
    return result!;
  }

  /** A signed tools/call, verified; returns the result message. */
  async call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const signed = await this.sign({ jsonrpc: '2.0', id: this.id(), method: 'tools/call', params: { name, arguments: args } });
    const response = await this.post(signed.text);
    if (response.status !== 200) throw new Error(`tools/call answered ${response.status}: ${await response.text()}`);
    const messages = await this.verified(response, signed.nonce);
    return messages.find((m) => 'result' in m || 'error' in m)!;
  }

  /** The `PQC-Envelope` of a bodyless request to `path` (default this client's). */
  async envelope(method: string, options: { path?: string; mcpSessionId?: string | null; sessionId?: string } = {}): Promise<string> {
    const signed = await this.signer.signMessage(
      { http: { method, path: options.path ?? this.path, mcp_session_id: options.mcpSessionId !== undefined ? options.mcpSessionId : (this.mcpSessionId ?? null) } },
      { sessionId: options.sessionId ?? this.session.sessionId },
    );
    return JSON.stringify(signed.envelope);
  }

  /** A bodyless request with its PQC-Envelope (§4); `envelope` '' sends none. */
  async bodyless(method: 'GET' | 'DELETE', envelope?: string, signal?: AbortSignal, url: string = this.url, extra: Record<string, string> = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...extra };
    if (this.mcpSessionId) {
      headers['mcp-session-id'] = this.mcpSessionId;
      headers['mcp-protocol-version'] = LEGACY_PROTOCOL_VERSION;
    }
    const target = new URL(url);
    envelope ??= await this.envelope(method, { path: target.pathname + target.search });
    if (envelope !== '') headers[PQC_ENVELOPE_HEADER] = envelope;
    return fetch(url, { method, headers, signal });
  }

  /** Ends the PQC session: DELETE on the handshake path (§9). */
  async endSession(): Promise<Response> {
    const path = new URL(this.handshakeUrl).pathname;
    return fetch(this.handshakeUrl, { method: 'DELETE', headers: { [PQC_ENVELOPE_HEADER]: await this.envelope('DELETE', { path, mcpSessionId: null }) } });
  }
}

/** A lossless parse of a message text (for tests that inspect envelopes). */
export function tree(text: string): JsonValue {
  return parseLossless(text);
}
