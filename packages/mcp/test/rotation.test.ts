/**
 * Key rotation (docs/PROTOCOL.md §11) over real HTTP on 127.0.0.1: a server restarted with a new key and its rotation
 * record keeps serving clients pinned to the old key (PQCMCPClient, and the MCP SDK v2 client through pqcFetch), which
 * follow the chain and re-pin; a rogue server answering the handshake with a forged chain (another signer, a tampered
 * field, the wrong context, no signature, a gap, someone else's record, an expired overlap, a way back to a retired key) is refused with
 * its `rotationReason`, and the client stays pinned where it was.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import {
  AgentIdentity,
  MemorySessionStore,
  PQCHandshake,
  RotationError,
  createRotationRecord,
  pqcFetch,
  type Algorithm,
  type RotationChain,
  type RotationRecord,
} from '@pqc-mcp/core';
import { readVector, seededIdentity } from '@pqc-mcp/test-kit';
import { PQCMCPClient } from '../src/index.js';
import { CLIENT, SERVER, exampleServer, textOf } from './helpers.js';

const A = SERVER;
const B = seededIdentity(44, 'ML-DSA-87', 'rotated-server');
const C = seededIdentity(45, 'ML-DSA-44', 'rotated-again');

const MODES = [
  ['auto', { mode: 'auto' as const }],
  ['pinned 2026-07-28', { mode: { pin: '2026-07-28' } }],
  ['legacy (2025-11-25)', { mode: 'legacy' as const }],
] as const;

/** Runs the example server as `identity` (with `rotations`) on `port` (0: any); resolves its URL and port. */
async function start(identity: AgentIdentity, rotations?: RotationRecord[], port = 0) {
  const server = exampleServer({ identity, rotations, store: new MemorySessionStore() });
  const running = await server.run({ port, closeGraceMs: 100 });
  return { server, url: running.url, port: running.port };
}

describe('a server restarted with a new key and its rotation record', () => {
  test.each(MODES)('PQCMCPClient (%s) pinned to the old DID keeps working: it follows the record and re-pins', async (_name, versionNegotiation) => {
    const first = await start(A);
    const rotations: RotationChain[] = [];
    const client = new PQCMCPClient({
      identity: CLIENT,
      serverUrl: first.url,
      serverDid: A.did,
      versionNegotiation,
      onRotation: (chain) => rotations.push(chain),
    });
    try {
      await client.connect();
      expect(textOf(await client.callTool('add', { a: 1, b: 2 }))).toBe('3');
      await first.server.close();
      // Let the client's HTTP pool see its kept-alive connection closed (Node 22's fetch otherwise writes on it).
      await new Promise((resolve) => setTimeout(resolve, 200));

      const record = await createRotationRecord(A, B);
      const second = await start(B, [record], first.port);
      try {
        // The new instance lost the old sessions: that call fails unsigned and is not sent again (§6) ...
        await expect(client.callTool('add', { a: 1, b: 2 })).rejects.toMatchObject({ name: 'SessionExpiredError', reason: 'unknown_session' });
        // ... and the next one performs a handshake naming the old DID, answered by the new key with the record.
        expect(textOf(await client.callTool('add', { a: 2, b: 3 }))).toBe('5');
        expect(textOf(await client.callTool('whoami'))).toBe(CLIENT.did);
        expect(client.serverDid).toBe(B.did);
        expect(client.session!.peerDid).toBe(B.did);
        expect(client.fetch.retiredDids).toEqual([A.did]);
        expect(rotations).toHaveLength(1);
        expect(rotations[0]).toMatchObject({ fromDid: A.did, did: B.did, algorithm: 'ML-DSA-87', publicKey: B.publicKeyHex, retiredDids: [A.did] });
        expect(rotations[0]!.records).toEqual([record]);
        const handshakes = client.getAuditLog().filter((e) => e.operation === 'handshake');
        expect(handshakes.at(-1)).toMatchObject({ signer_did: B.did, details: { rotated_from: A.did } });
        expect(second.server.getAuditLog().find((e) => e.operation === 'handshake')).toMatchObject({ details: { rotated_from: A.did } });
      } finally {
        await client.close();
        await second.server.close();
      }
    } finally {
      await first.server.close();
    }
  });

  test('the SDK v2 client through pqcFetch, pinned by public key, follows a chain of two (A → B → C); GET pqc/handshake serves it', async () => {
    const ab = await createRotationRecord(A, B, { effectiveAt: Date.now() - 60_000 });
    const bc = await createRotationRecord(B, C);
    const server = await start(C, [ab, bc]);
    try {
      const info = (await (await fetch(new URL('pqc/handshake', server.url))).json()) as Record<string, unknown>;
      expect(info).toEqual({ did: C.did, algorithm: 'ML-DSA-44', public_key: C.publicKeyHex, versions: [2], rotations: [ab, bc] });

      const seen: RotationChain[] = [];
      const fetchWithPqc = pqcFetch({ identity: CLIENT, serverPublicKey: A.publicKey, onRotation: (chain) => seen.push(chain) });
      const client = new ClientV2({ name: 'v2', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
      await client.connect(new TransportV2(new URL(server.url), { fetch: fetchWithPqc }));
      expect(await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })).toMatchObject({ content: [{ type: 'text', text: '42' }] });
      await client.close();
      expect(fetchWithPqc.serverDid).toBe(C.did);
      expect(fetchWithPqc.retiredDids).toEqual([A.did, B.did]);
      expect(seen.map((c) => [c.fromDid, c.did, c.records.length])).toEqual([[A.did, C.did, 2]]);

      // Re-pinned on the new key: later handshakes name C and need no record.
      fetchWithPqc.reset();
      await fetchWithPqc.handshake(server.url);
      expect(fetchWithPqc.session!.rotation).toBeUndefined();
      expect(seen).toHaveLength(1);
    } finally {
      await server.server.close();
    }
  });

  test('once re-pinned, the old key is refused: the old server back (or whoever holds its key) is peer_mismatch', async () => {
    const record = await createRotationRecord(A, B);
    const rotated = await start(B, [record]);
    const client = pqcFetch({ identity: CLIENT, serverDid: A.did });
    try {
      await client.handshake(rotated.url);
      expect(client.serverDid).toBe(B.did);
    } finally {
      await rotated.server.close();
    }
    const old = await start(A, undefined, rotated.port);
    try {
      client.reset();
      await expect(client.handshake(old.url)).rejects.toMatchObject({ reason: 'peer_mismatch' });
      expect(client.serverDid).toBe(B.did);
    } finally {
      await old.server.close();
    }
  });

  test('followRotations: false keeps revision 2 behaviour (peer_mismatch); a client pinned to a key whose overlap ended is refused by the server', async () => {
    const record = await createRotationRecord(A, B, { effectiveAt: Date.now() - 3_600_000, overlapSec: 60 });
    const server = await start(B, [record]);
    try {
      const strict = pqcFetch({ identity: CLIENT, serverDid: A.did, followRotations: false });
      await expect(strict.handshake(server.url)).rejects.toMatchObject({ reason: 'peer_mismatch' });
      const late = pqcFetch({ identity: CLIENT, serverDid: A.did });
      const error = await late.handshake(server.url).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'HandshakeError', reason: 'peer_mismatch' });
      expect((error as Error).message).toMatch(/HTTP 401/);
      expect(late.serverDid).toBe(A.did);
      // The server refused at start-up a chain that does not end at its own key.
      expect(() => exampleServer({ identity: C, rotations: [record] })).toThrow(/option "rotations".*chain_broken/);
    } finally {
      await server.server.close();
    }
  });
});

/** The rotation vectors of docs/vectors/rotation.json, their keys as identities. */
interface Vectors {
  keys: { name: string; algorithm: Algorithm; seed: string }[];
  records: { name: string; record: string }[];
}
const vectors = readVector<Vectors>('rotation.json');
const key = (name: string) => {
  const k = vectors.keys.find((x) => x.name === name)!;
  return AgentIdentity.fromSeed(k.seed, { algorithm: k.algorithm, name });
};
const recordsOf = (...names: string[]) => names.map((n) => JSON.parse(vectors.records.find((r) => r.name === n)!.record) as RotationRecord);

/**
 * A rogue server: answers the handshake as `identity` with whatever records it is given (`PQCHandshake.respond`
 * without the start-up check a real server makes), on its own clock, accepting any client clock within a day.
 */
async function rogue(identity: AgentIdentity, rotations: RotationRecord[], now: number): Promise<{ url: string; close(): Promise<void> }> {
  const store = new MemorySessionStore({ now: () => now });
  const http: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      PQCHandshake.respond(Buffer.concat(chunks), identity, { store, rotations, now, clockSkewSec: 86_400 })
        .then(({ response }) => res.writeHead(200, { 'content-type': 'application/json' }).end(response))
        .catch((err: { reason?: string }) =>
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32010, message: 'refused', data: { pqc: err.reason } } })),
        );
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mcp`, close: () => new Promise((resolve) => http.close(() => resolve())) };
}

describe('a rogue server answering with a forged chain: refused, the pin unchanged', () => {
  const NOW = Date.parse('2026-11-26T00:00:00Z');
  const LATER = Date.parse('2026-12-01T12:00:00Z');
  const cases: [string, string, string[], number, number, string][] = [
    // name, the key that answers, the records it serves, its clock, the client's clock, the rotationReason
    ['signed by another key', 'B', ['A to B, signed by X'], NOW, NOW, 'invalid_signature'],
    ['a field changed after signing', 'B', ['A to B, old_valid_until moved after signing'], NOW, NOW, 'invalid_signature'],
    ['the new key swapped after signing', 'X', ['A to X, new key swapped for X after signing'], NOW, NOW, 'invalid_signature'],
    ['signed with the message context', 'B', ['A to B, signed with the message context'], NOW, NOW, 'invalid_signature'],
    ['unsigned', 'B', ['A to B, unsigned'], NOW, NOW, 'unsigned'],
    ['a gap in the chain', 'C', ['A to B', 'X to C'], LATER, LATER, 'chain_broken'],
    ["another server's genuine record, relayed by a server holding another key", 'X', ['A to B'], NOW, NOW, 'chain_broken'],
    ['an overlap already over on the client clock', 'B', ['A to B'], Date.parse('2026-12-02T11:00:00Z'), Date.parse('2026-12-02T12:10:00Z'), 'overlap_expired'],
    ['a rotation not yet in effect', 'C', ['A to B', 'B to C'], NOW, NOW, 'not_yet_effective'],
  ];

  test.each(cases)('%s', async (_name, answering, names, serverNow, clientNow, reason) => {
    const server = await rogue(key(answering), recordsOf(...names), serverNow);
    try {
      const rotated: RotationChain[] = [];
      const client = new PQCMCPClient({ identity: CLIENT, serverUrl: server.url, serverDid: key('A').did, now: () => clientNow, onRotation: (c) => rotated.push(c) });
      const error = await client.connect().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RotationError);
      expect(error).toMatchObject({ name: 'RotationError', reason: 'peer_mismatch', rotationReason: reason });
      expect(client.serverDid).toBe(key('A').did);
      expect(client.fetch.retiredDids).toEqual([]);
      expect(rotated).toEqual([]);
    } finally {
      await server.close();
    }
  });

  test('the genuine record from the same rogue setup is followed (the refusals above are the records, not the harness)', async () => {
    const server = await rogue(key('B'), recordsOf('A to B'), NOW);
    try {
      const client = pqcFetch({ identity: CLIENT, serverDid: key('A').did, now: () => NOW });
      await client.handshake(server.url);
      expect(client.serverDid).toBe(key('B').did);
    } finally {
      await server.close();
    }
  });

  test('a client that retired a key refuses a chain that leads back to it', async () => {
    const server = await rogue(key('B'), recordsOf('A to B'), NOW);
    try {
      const client = pqcFetch({ identity: CLIENT, serverDid: key('A').did, retiredDids: [key('B').did], now: () => NOW });
      await expect(client.handshake(server.url)).rejects.toMatchObject({ rotationReason: 'key_reused' });
    } finally {
      await server.close();
    }
  });

  test('rotating back: after following A → B, a genuine B → A served by the old key A is refused (A is retired)', async () => {
    const client = pqcFetch({ identity: CLIENT, serverDid: key('A').did, now: () => LATER });
    const forward = await rogue(key('B'), recordsOf('A to B'), LATER);
    try {
      await client.handshake(forward.url);
    } finally {
      await forward.close();
    }
    expect(client.serverDid).toBe(key('B').did);
    const back = await rogue(key('A'), recordsOf('B to A'), LATER);
    try {
      client.reset();
      await expect(client.handshake(back.url)).rejects.toMatchObject({ name: 'RotationError', rotationReason: 'key_reused' });
      expect(client.serverDid).toBe(key('B').did);
    } finally {
      await back.close();
    }
  });
});
