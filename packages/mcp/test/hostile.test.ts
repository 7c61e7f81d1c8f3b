/**
 * Hostile servers over real loopback HTTP. Each answers the handshake correctly with a real server identity (a
 * genuine `PQCMCPServer` behind it), lets `initialize` through, then misbehaves on `tools/call`; the client must
 * refuse, with the PQC reason, at once (in SSE mode too, where the SDK alone would wait for its request timeout).
 */
import {
  MessageSigner,
  createPQCHandler,
  pqcErrorResponse,
  type AgentIdentity,
} from '@pqc-mcp/core';
import {
  HandshakeError,
  PQCMCPClient,
  PQCTransportError,
  PeerNotAuthenticatedError,
  ReplayAttackError,
  SessionExpiredError,
  SignatureVerificationError,
} from '../src/index.js';
import { CLIENT, OTHER, SERVER, exampleServer, serveFetch, textOf, type Served } from './helpers.js';

type Envelope = { session_id: string; in_reply_to?: string; signer_did: string };
type SignedMessage = Record<string, unknown> & { _pqc: Envelope };

/** Rewrites one signed server message (its JSON text) for the n-th tools/call. */
type Mutation = (text: string, call: number) => Promise<string>;

function isResponse(text: string): boolean {
  const message = JSON.parse(text) as Record<string, unknown>;
  return 'result' in message || 'error' in message;
}

/** The response with `mutate` applied to each JSON-RPC response it carries (JSON body or SSE events). */
async function rewrite(response: Response, mutate: (text: string) => Promise<string>): Promise<Response> {
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  const text = await response.text();
  if ((headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const events = await Promise.all(
      text.split('\n\n').map(async (event) => {
        const lines = event.split('\n');
        const i = lines.findIndex((l) => l.startsWith('data: '));
        if (i === -1 || !isResponse(lines[i]!.slice(6))) return event;
        lines[i] = `data: ${await mutate(lines[i]!.slice(6))}`;
        return lines.join('\n');
      }),
    );
    return new Response(events.join('\n\n'), { status: response.status, headers });
  }
  return new Response(text.trim() === '' ? text : await mutate(text), { status: response.status, headers });
}

/** A genuine PQCMCPServer whose answers to tools/call go through `mutate`. */
async function hostileServer(json: boolean, mutate: Mutation): Promise<Served> {
  const genuine = exampleServer({ enableJsonResponse: json });
  let calls = 0;
  const served = await serveFetch(async (request) => {
    const isCall = request.method === 'POST' && (await request.clone().text()).includes('"method":"tools/call"');
    const response = await genuine.fetch(request);
    if (!isCall) return response;
    const call = ++calls;
    return rewrite(response, (text) => mutate(text, call));
  });
  return {
    ...served,
    close: async () => {
      await genuine.close();
      await served.close();
    },
  };
}

/** Re-signs a server message (without its envelope) with `identity`, keeping its session and `in_reply_to` unless told. */
async function resign(text: string, identity: AgentIdentity, overrides: { inReplyTo?: string } = {}): Promise<SignedMessage> {
  const { _pqc: envelope, ...message } = JSON.parse(text) as SignedMessage;
  const signed = await new MessageSigner(identity).signMessage(message, {
    sessionId: envelope.session_id,
    inReplyTo: overrides.inReplyTo ?? envelope.in_reply_to,
  });
  return JSON.parse(signed.text) as SignedMessage;
}

const attacks: [string, Mutation, new (...args: never[]) => PQCTransportError, string][] = [
  [
    'an unsigned response',
    async (text) => {
      const { _pqc: _envelope, ...message } = JSON.parse(text) as SignedMessage;
      return JSON.stringify(message);
    },
    SignatureVerificationError,
    'missing_envelope',
  ],
  [
    'a response signed by another key, claiming the server DID',
    async (text) => {
      const forged = await resign(text, OTHER);
      forged._pqc.signer_did = SERVER.did;
      return JSON.stringify(forged);
    },
    SignatureVerificationError,
    'invalid_signature',
  ],
  ['a response signed by another key, under its own DID', async (text) => JSON.stringify(await resign(text, OTHER)), PeerNotAuthenticatedError, 'peer_mismatch'],
  [
    'a response whose in_reply_to does not match the request',
    async (text) => JSON.stringify(await resign(text, SERVER, { inReplyTo: 'ab'.repeat(16) })),
    PeerNotAuthenticatedError,
    'peer_mismatch',
  ],
  [
    'a replayed server message (the first answer sent again to the second request)',
    (() => {
      let first: string | undefined;
      return async (text: string, call: number) => {
        if (call === 1) first = text;
        return call === 1 ? text : first!;
      };
    })(),
    ReplayAttackError,
    'replay_detected',
  ],
];

describe.each([
  ['SSE', false],
  ['JSON', true],
])('the client refuses a hostile server (%s responses)', (_mode, json) => {
  test.each(attacks)('%s', async (_name, mutate, errorClass, reason) => {
    const server = await hostileServer(json, mutate);
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: server.url, serverDid: SERVER.did });
    try {
      await client.connect();
      if (reason === 'replay_detected') expect(textOf(await client.callTool('greet', { name: 'first' }))).toBe('Hello, first!');
      const started = Date.now();
      const error = await client.callTool('greet', { name: 'x' }, { timeout: 20_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(errorClass);
      expect(error).toMatchObject({ reason });
      expect(Date.now() - started).toBeLessThan(5000); // refused as the message arrives, not at a timeout
      const rejected = client.getAuditLog().filter((e) => e.operation === 'rejected');
      expect(rejected.map((e) => e.reason)).toContain(reason);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('the client refuses a hostile server at the handshake', () => {
  test('a server whose DID differs from the pinned one', async () => {
    const impostor = exampleServer({ identity: OTHER });
    const r = await impostor.run();
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverDid: SERVER.did });
    try {
      const error = await client.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HandshakeError);
      expect(error).toMatchObject({ reason: 'peer_mismatch' });
      expect(client.mcpClient).toBeUndefined();
      // Pinned by public key instead of DID: the same refusal.
      const byKey = new PQCMCPClient({ identity: CLIENT, serverUrl: r.url, serverPublicKey: SERVER.publicKeyHex });
      await expect(byKey.connect()).rejects.toMatchObject({ name: 'HandshakeError', reason: 'peer_mismatch' });
    } finally {
      await impostor.close();
    }
  });
});

describe('a server that always answers session_expired', () => {
  test('the client re-handshakes once, then surfaces SessionExpiredError', async () => {
    const handler = createPQCHandler({ identity: SERVER });
    let handshakes = 0;
    let posts = 0;
    const server = await serveFetch(async (request) => {
      if (new URL(request.url).pathname === handler.handshakePath) {
        if (request.method === 'POST') handshakes++;
        return handler.handle(request, () => Promise.resolve(new Response(null, { status: 404 })));
      }
      posts++;
      const body = (await request.json().catch(() => ({}))) as { id?: number };
      return pqcErrorResponse('session_expired', body.id ?? null, new URL(handler.handshakePath, request.url).href);
    });
    const client = new PQCMCPClient({ identity: CLIENT, serverUrl: server.url, serverDid: SERVER.did });
    try {
      const error = await client.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SessionExpiredError);
      expect(error).toMatchObject({ reason: 'session_expired' });
      expect(handshakes).toBe(2);
      expect(posts).toBe(2);
      const audit = client.getAuditLog();
      expect(audit.filter((e) => e.operation === 'handshake')).toHaveLength(2);
      expect(audit.filter((e) => e.operation === 'rejected').map((e) => e.reason)).toEqual(['session_expired', 'session_expired']);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
