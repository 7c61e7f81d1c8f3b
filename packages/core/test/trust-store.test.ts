/**
 * Trust stores (`authorize: TrustStore`): the document's rules, `UrlTrustStore` against a real key server over HTTP
 * (its bounds: cooldown on unknown keys, time, size, redirects, ETag), `FileTrustStore`'s watcher, and a server over
 * real HTTP with the real MCP SDK client through `pqcFetch`.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMcpApp } from '../../../examples/shared/tools.js';
import {
  MemorySessionStore,
  PQCHandshake,
  TrustStore,
  UrlTrustStore,
  createPQCHandler,
  parseTrustDocument,
  pqcAuthInfo,
  pqcFetch,
  type AgentIdentity,
  type PQCServerOptions,
  type SessionStore,
  type TrustDocument,
} from '../src/index.js';
import { FileTrustStore, nodeRequestTarget, sendWebResponse, toWebRequest } from '../src/node/index.js';
import { connectSdkClient, seededIdentity } from '@pqc-mcp/test-kit';

const SERVER = seededIdentity(61);
const CLIENT = seededIdentity(62);
const OTHER = seededIdentity(63);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function documentOf(trusted: AgentIdentity[], revoked: AgentIdentity[] = []): TrustDocument {
  return { keys: trusted.map((id) => ({ ...id.toJwk(), name: `agent ${id.did.slice(10, 16)}` })), revoked: revoked.map((id) => id.did) };
}

/** A key server: serves `doc` (JSON text) at /jwks.json, counting requests; `mode` breaks it on purpose. */
interface KeyServer {
  url: string;
  hits: number;
  doc: string;
  mode: 'ok' | 'hang' | 'redirect' | 'etag';
  close(): Promise<void>;
}

async function startKeyServer(doc: TrustDocument): Promise<KeyServer> {
  const state: KeyServer = { url: '', hits: 0, doc: JSON.stringify(doc), mode: 'ok', close: async () => {} };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    state.hits++;
    if (state.mode === 'hang') return; // never answers
    if (state.mode === 'redirect') {
      res.writeHead(302, { location: '/elsewhere.json' }).end();
      return;
    }
    const etag = `"${createHash('sha256').update(state.doc).digest('hex')}"`;
    if (state.mode === 'etag' && req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', etag }).end(state.doc);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  state.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}

/** The core handler behind node:http with the MCP SDK v2 app: what the clients of these tests reach. */
async function startMcpServer(pqc: PQCServerOptions): Promise<{ url: string; seen: unknown[]; close(): Promise<void> }> {
  const app = createMcpApp();
  const handler = createPQCHandler(pqc);
  const seen: unknown[] = [];
  const server = createServer((req, res) => {
    handler
      .handle(toWebRequest(req), (request, body, context) => (seen.push(body), app.fetch(request, { parsedBody: body, authInfo: pqcAuthInfo(context) })), {
        target: nodeRequestTarget(req),
      })
      .then((response) => sendWebResponse(res, response))
      .catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  return {
    url,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
    },
  };
}

describe('a trust document', () => {
  test('public JWKs with names (AgentIdentity.toJwk, PeerIdentity.toJwk) and revoked DIDs', () => {
    const set = parseTrustDocument(JSON.stringify({ keys: [CLIENT.toJwk(), { ...OTHER.toPeer().toJwk(), name: 'other' }], revoked: [OTHER.did] }));
    expect([...set.keys.keys()]).toEqual([CLIENT.did, OTHER.did]);
    expect(set.keys.get(OTHER.did)).toEqual({ did: OTHER.did, algorithm: OTHER.algorithm, publicKeyHex: OTHER.publicKeyHex, name: 'other' });
    expect([...set.revoked]).toEqual([OTHER.did]);
  });

  test.each([
    ['not JSON', '{"keys": [', /not JSON/],
    ['not an object', '[]', /must be an object/],
    ['keys missing', '{}', /"keys" must be an array/],
    ['a private key', JSON.stringify({ keys: [CLIENT.toJwk({ includePrivate: true })] }), /keys\[0\] holds a private key/],
    ['a did that is not its key', JSON.stringify({ keys: [{ ...CLIENT.toJwk(), did: OTHER.did }] }), /keys\[0\].*"did" does not match/],
    ['a key of another type', JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256' }] }), /keys\[0\].*kty/],
    ['a revoked entry not a DID', JSON.stringify({ keys: [], revoked: ['did:web:example.com'] }), /revoked\[0\]/],
  ])('%s is refused whole', (_name, text, message) => {
    expect(() => parseTrustDocument(text)).toThrow(message);
  });

  test('more entries than the bound is refused', () => {
    expect(() => parseTrustDocument(documentOf([CLIENT, OTHER], [CLIENT]), 2)).toThrow(/3 entries exceed the bound of 2/);
  });

  test('a store that cannot end sessions by client is refused at start-up with a trust store', () => {
    const memory = new MemorySessionStore();
    const partial = Object.fromEntries(
      ['createSession', 'getSession', 'endSession', 'recordNonce', 'recordHandshake', 'recordOnce', 'claimMcpSession', 'mcpSessionOwner', 'recordServerRequest', 'takeServerRequest'].map((m) => [
        m,
        (memory as unknown as Record<string, (...args: unknown[]) => unknown>)[m]!.bind(memory),
      ]),
    ) as unknown as SessionStore;
    expect(() => createPQCHandler({ identity: SERVER, authorize: new TrustStore(documentOf([CLIENT])), store: partial })).toThrow(/option "store" must implement endPeerSessions/);
    expect(() => createPQCHandler({ identity: SERVER, authorize: new TrustStore(documentOf([CLIENT])), store: memory })).not.toThrow();
  });
});

describe('UrlTrustStore against a key server over HTTP', () => {
  let keys: KeyServer;
  beforeEach(async () => {
    keys = await startKeyServer(documentOf([CLIENT]));
  });
  afterEach(() => keys.close());

  test('a flood of handshakes with fresh unknown keys costs at most one fetch per cooldown', async () => {
    let now = Date.now();
    const errors: Error[] = [];
    const trust = await UrlTrustStore.load(keys.url, { now: () => now, unknownKeyCooldownMs: 30_000, onError: (e) => errors.push(e) });
    expect(keys.hits).toBe(1);
    const server = await startMcpServer({ identity: SERVER, authorize: trust });
    try {
      const strangers = Array.from({ length: 12 }, (_, i) => seededIdentity(200 + i));
      const flood = async () => {
        const statuses = await Promise.all(
          strangers.map(async (id) => {
            const { request } = await PQCHandshake.initiate(id, { serverDid: SERVER.did });
            const response = await fetch(new URL('pqc/handshake', server.url), { method: 'POST', body: request });
            await response.arrayBuffer();
            return response.status;
          }),
        );
        expect(statuses).toEqual(strangers.map(() => 403));
      };
      await flood();
      expect(keys.hits).toBe(1); // within the cooldown of the first fetch: no fetch at all
      now += 30_000;
      await flood();
      expect(keys.hits).toBe(2); // one fetch for the whole flood
      now += 1_000;
      await flood();
      expect(keys.hits).toBe(2);

      // A key added on the key server is admitted at its first handshake past the cooldown.
      keys.doc = JSON.stringify(documentOf([CLIENT, OTHER]));
      const early = pqcFetch({ identity: OTHER, serverDid: SERVER.did });
      await expect(connectSdkClient('v2 client, auto', server.url, early)).rejects.toThrow(/peer_not_authorized/);
      now += 30_000;
      const client = await connectSdkClient('v2 client, auto', server.url, pqcFetch({ identity: OTHER, serverDid: SERVER.did }));
      expect(await client.callTool('echo', { text: 'admitted' })).toMatchObject({ content: [{ text: 'admitted' }] });
      await client.close();
      expect(keys.hits).toBe(3);
      expect(errors).toEqual([]);
    } finally {
      await server.close();
    }
  });

  test('revoked on the key server: refetched past maxAge on use, the live session ends at its next request', async () => {
    let now = Date.now();
    const trust = await UrlTrustStore.load(keys.url, { now: () => now, maxAgeMs: 60_000 });
    const store = new MemorySessionStore();
    const server = await startMcpServer({ identity: SERVER, authorize: trust, store });
    try {
      const client = await connectSdkClient('1.x client', server.url, pqcFetch({ identity: CLIENT, serverDid: SERVER.did }));
      expect(await client.callTool('echo', { text: 'one' })).toMatchObject({ content: [{ text: 'one' }] });
      keys.doc = JSON.stringify(documentOf([CLIENT], [CLIENT]));
      expect(await client.callTool('echo', { text: 'two' })).toMatchObject({ content: [{ text: 'two' }] }); // cached
      now += 60_000;
      const seen = server.seen.length;
      // This request starts the refetch (in the background); the revocation is in force by the next one.
      await client.callTool('echo', { text: 'three' }).catch(() => undefined);
      for (let i = 0; i < 100 && !trust.isRevoked(CLIENT.did); i++) await sleep(10);
      expect(trust.isRevoked(CLIENT.did)).toBe(true);
      await expect(client.callTool('echo', { text: 'four' })).rejects.toThrow(/peer_not_authorized/);
      expect(server.seen.length).toBeLessThanOrEqual(seen + 1);
      expect(store.size).toBe(0); // its session was ended in the store
      await client.close().catch(() => undefined);
    } finally {
      await server.close();
    }
  });

  test('bounded: a key server that does not answer, one that answers too much, or redirects, keeps the last good set', async () => {
    let now = Date.now();
    const errors: Error[] = [];
    const trust = await UrlTrustStore.load(keys.url, { now: () => now, timeoutMs: 200, maxBytes: 4096, onError: (e) => errors.push(e) });
    now += 400_000;
    keys.mode = 'hang';
    const started = Date.now();
    expect(await trust.reload()).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    keys.mode = 'redirect';
    expect(await trust.reload()).toBe(false);
    keys.mode = 'ok';
    keys.doc = JSON.stringify(documentOf(Array.from({ length: 4 }, (_, i) => seededIdentity(100 + i))));
    expect(await trust.reload()).toBe(false);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/no answer within 200 ms.*last good one stays/),
      expect.stringMatching(/not read.*last good one stays/),
      expect.stringMatching(/exceeds 4096.*last good one stays/),
    ]);
    expect(await trust.authorize(CLIENT.toPeer())).toBe(true);
    await expect(UrlTrustStore.load(keys.url, { maxBytes: 4096 })).rejects.toThrow(/exceeds 4096/);
    keys.mode = 'hang';
    await expect(UrlTrustStore.load(keys.url, { timeoutMs: 200 })).rejects.toThrow(/no answer within 200 ms/);
  });

  test('an unchanged document (304 to its ETag) is not parsed again; a changed one replaces it', async () => {
    keys.mode = 'etag';
    const trust = await UrlTrustStore.load(keys.url);
    const withdrawn: string[][] = [];
    trust.onWithdraw((dids) => withdrawn.push([...dids]));
    expect(await trust.reload()).toBe(true);
    expect(keys.hits).toBe(2);
    expect(withdrawn).toEqual([]);
    keys.doc = JSON.stringify(documentOf([OTHER]));
    expect(await trust.reload()).toBe(true);
    expect(withdrawn).toEqual([[CLIENT.did]]);
    expect(await trust.authorize(OTHER.toPeer())).toBe(true);
    expect(await trust.authorize(CLIENT.toPeer())).toBe(false);
  });
});

describe('FileTrustStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pqc-trust-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('watched: a revocation written to the file is applied without any request', async () => {
    const file = join(dir, 'clients.json');
    await writeFile(file, JSON.stringify(documentOf([CLIENT, OTHER])));
    const trust = await FileTrustStore.load(file);
    try {
      const withdrawn: string[] = [];
      trust.onWithdraw((dids) => withdrawn.push(...dids));
      await writeFile(`${file}.new`, JSON.stringify(documentOf([CLIENT, OTHER], [OTHER])));
      await rename(`${file}.new`, file);
      for (let i = 0; i < 200 && withdrawn.length === 0; i++) await sleep(10);
      expect(withdrawn).toEqual([OTHER.did]);
      expect(trust.allows(OTHER.did)).toBe(false);
      expect(trust.allows(CLIENT.did)).toBe(true);
    } finally {
      trust.close();
    }
  });

  test('a session store that fails to end the sessions: reported to onError, this instance refuses the client anyway', async () => {
    const file = join(dir, 'clients.json');
    await writeFile(file, JSON.stringify(documentOf([CLIENT])));
    const errors: Error[] = [];
    const trust = await FileTrustStore.load(file, { watch: false, onError: (e) => errors.push(e) });
    class FailingStore extends MemorySessionStore {
      override async endPeerSessions(): Promise<string[]> {
        throw new Error('connection reset');
      }
    }
    const server = await startMcpServer({ identity: SERVER, authorize: trust, store: new FailingStore() });
    try {
      const client = await connectSdkClient('v2 client, auto', server.url, pqcFetch({ identity: CLIENT, serverDid: SERVER.did }));
      expect(await client.callTool('echo', { text: 'ok' })).toMatchObject({ content: [{ text: 'ok' }] });
      await writeFile(file, JSON.stringify(documentOf([CLIENT], [CLIENT])));
      expect(await trust.reload()).toBe(true);
      for (let i = 0; i < 100 && errors.length === 0; i++) await sleep(10);
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/sessions of did:pqaid:\w+ could not be ended in the session store: connection reset/)]);
      await expect(client.callTool('echo', { text: 'refused' })).rejects.toThrow(/peer_not_authorized/);
      await client.close().catch(() => undefined);
    } finally {
      await server.close();
      trust.close();
    }
  });

  test('a file that cannot be read at start-up fails the start; one too large is refused', async () => {
    await expect(FileTrustStore.load(join(dir, 'missing.json'))).rejects.toThrow(/ENOENT/);
    const file = join(dir, 'big.json');
    await writeFile(file, JSON.stringify(documentOf([CLIENT, OTHER])));
    await expect(FileTrustStore.load(file, { maxBytes: 1000 })).rejects.toThrow(/larger than 1000 bytes/);
  });

  test('a file removed after start: reported once, the last good set stays', async () => {
    const file = join(dir, 'clients.json');
    await writeFile(file, JSON.stringify(documentOf([CLIENT])));
    const errors: Error[] = [];
    const trust = await FileTrustStore.load(file, { watch: false, onError: (e) => errors.push(e) });
    await rm(file);
    expect(await trust.authorize(CLIENT.toPeer())).toBe(true);
    expect(await trust.authorize(CLIENT.toPeer())).toBe(true);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/ENOENT.*the last good set stays/);
  });
});
