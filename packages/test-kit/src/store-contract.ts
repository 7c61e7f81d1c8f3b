/**
 * The session-store contract (docs/PROTOCOL.md §3 step 7, §5, §6, §9, and `SessionStore` in core): every store runs
 * it (memory, Redis, Redis Cluster, Durable Object), so the rules that decide replays, liveness and limits are the
 * same everywhere, whatever language they are written in (TypeScript, Lua, SQL).
 */
import { randomBytes } from 'node:crypto';
import type { SessionLimits, SessionRecord, SessionStore } from '@pqc-mcp/core';

/** A store for one test, and a way to reach the same backend through another instance. */
export interface StoreUnderTest {
  store: SessionStore;
  /** Another store instance on the same backend (another server instance), or the same object for a memory store. */
  sibling(): Promise<SessionStore>;
  close(): Promise<void>;
}

/** What the suite asks a store factory for. */
export interface StoreOptions {
  maxNoncesPerSession: number;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const LIMITS: SessionLimits = { maxSessions: 1000, maxSessionsPerClient: 16, retentionSec: 660 };

function record(peer: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    sessionId: hex(16),
    profile: 2,
    peerDid: `did:pqaid:${peer.padEnd(64, '0')}`,
    peerAlgorithm: 'ML-DSA-65',
    peerPublicKey: 'ab'.repeat(1952),
    localDid: `did:pqaid:${'5'.repeat(64)}`,
    createdAt: now,
    expiresAt: now + 3_600_000,
    ...overrides,
  };
}

/** Runs the contract against the stores `make` builds (a fresh, empty namespace each time). */
export function runSessionStoreContract(name: string, make: (options: StoreOptions) => Promise<StoreUnderTest>): void {
  describe(`session store contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let store: SessionStore;
    beforeEach(async () => {
      sut = await make({ maxNoncesPerSession: 4 });
      store = sut.store;
    });
    afterEach(async () => {
      await sut.close();
    });

    test('a created session reads back as written; an unknown one is undefined', async () => {
      const r = record('a1');
      expect(await store.createSession(r, LIMITS)).toEqual([]);
      expect(await store.getSession(r.sessionId)).toEqual(r);
      expect(await store.getSession(hex(16))).toBeUndefined();
    });

    test('a session id is never opened twice', async () => {
      const r = record('a2');
      await store.createSession(r, LIMITS);
      await expect(store.createSession({ ...r, peerDid: record('b2').peerDid }, LIMITS)).rejects.toThrow();
      expect((await store.getSession(r.sessionId))?.peerDid).toBe(r.peerDid);
    });

    test('a nonce is accepted once per session; another session has its own; an unknown session is unknown', async () => {
      const a = record('a3');
      const b = record('b3');
      await store.createSession(a, LIMITS);
      await store.createSession(b, LIMITS);
      const nonce = hex(16);
      const t = Date.now();
      expect(await store.recordNonce(a.sessionId, nonce, t, 660)).toBe('accepted');
      expect(await store.recordNonce(a.sessionId, nonce, t, 660)).toBe('replay');
      expect(await store.recordNonce(b.sessionId, nonce, t, 660)).toBe('accepted');
      expect(await store.recordNonce(hex(16), hex(16), t, 660)).toBe('unknown');
    });

    test('past the per-session cap the oldest nonce is dropped and its time becomes a floor', async () => {
      const r = record('a4');
      await store.createSession(r, LIMITS);
      const t = Date.now();
      const nonces = [hex(16), hex(16), hex(16), hex(16)];
      for (let i = 0; i < 4; i++) expect(await store.recordNonce(r.sessionId, nonces[i]!, t + i * 1000, 660)).toBe('accepted');
      // A fifth drops the first (time t): nothing at or before t can be proven new any more.
      expect(await store.recordNonce(r.sessionId, hex(16), t + 4000, 660)).toBe('accepted');
      expect(await store.recordNonce(r.sessionId, nonces[0]!, t, 660)).toBe('replay');
      expect(await store.recordNonce(r.sessionId, hex(16), t, 660)).toBe('replay');
      expect(await store.recordNonce(r.sessionId, hex(16), t + 500, 660)).toBe('accepted');
      for (const nonce of nonces.slice(2)) expect(await store.recordNonce(r.sessionId, nonce, t + 3000, 660)).toBe('replay');
    });

    test('an ended session keeps its record and nonces: new nonces are "ended", old ones replays', async () => {
      const r = record('a5');
      await store.createSession(r, LIMITS);
      const used = hex(16);
      expect(await store.recordNonce(r.sessionId, used, Date.now(), 660)).toBe('accepted');
      await store.endSession(r.sessionId, 660);
      const ended = await store.getSession(r.sessionId);
      expect(ended?.endedAt).toEqual(expect.any(Number));
      const fresh = hex(16);
      expect(await store.recordNonce(r.sessionId, fresh, Date.now(), 660)).toBe('ended');
      expect(await store.recordNonce(r.sessionId, fresh, Date.now(), 660)).toBe('replay');
      expect(await store.recordNonce(r.sessionId, used, Date.now(), 660)).toBe('replay');
      await store.endSession(r.sessionId, 660); // ending twice changes nothing
      expect((await store.getSession(r.sessionId))?.endedAt).toBe(ended?.endedAt);
    });

    test('an expired session answers "expired" and is kept for the retention', async () => {
      const r = record('a6', { expiresAt: Date.now() - 1000 });
      await store.createSession(r, LIMITS);
      expect(await store.getSession(r.sessionId)).toBeDefined();
      const nonce = hex(16);
      expect(await store.recordNonce(r.sessionId, nonce, Date.now(), 660)).toBe('expired');
      expect(await store.recordNonce(r.sessionId, nonce, Date.now(), 660)).toBe('replay');
    });

    test('the record of an ended session is forgotten after its expiry and the retention', async () => {
      const r = record('a7', { expiresAt: Date.now() + 300 });
      await store.createSession(r, { ...LIMITS, retentionSec: 1 });
      await store.endSession(r.sessionId, 1);
      expect(await store.getSession(r.sessionId)).toBeDefined();
      await sleep(1500);
      expect(await store.getSession(r.sessionId)).toBeUndefined();
      expect(await store.recordNonce(r.sessionId, hex(16), Date.now(), 660)).toBe('unknown');
    });

    test('a client at its session cap: opening one more ends its oldest, other clients untouched', async () => {
      const limits = { ...LIMITS, maxSessionsPerClient: 3 };
      const mine = [record('a8', { createdAt: Date.now() - 3000 }), record('a8', { createdAt: Date.now() - 2000 }), record('a8', { createdAt: Date.now() - 1000 })];
      const other = record('b8');
      await store.createSession(other, limits);
      for (const r of mine) expect(await store.createSession(r, limits)).toEqual([]);
      const next = record('a8');
      expect(await store.createSession(next, limits)).toEqual([mine[0]!.sessionId]);
      expect(await store.recordNonce(mine[0]!.sessionId, hex(16), Date.now(), 660)).toBe('ended');
      for (const r of [...mine.slice(1), next, other]) expect(await store.recordNonce(r.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
    });

    test('a full store ends the least recently used live session instead of refusing', async () => {
      const limits = { ...LIMITS, maxSessions: 3 };
      const [a, b, c] = [record('a9'), record('b9'), record('c9')];
      for (const r of [a, b, c]) await store.createSession(r, limits);
      await sleep(5);
      // a and c are used after b was last: b is the least recently used.
      expect(await store.recordNonce(a.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
      expect(await store.recordNonce(c.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
      const d = record('d9');
      expect(await store.createSession(d, limits)).toEqual([b.sessionId]);
      expect(await store.recordNonce(b.sessionId, hex(16), Date.now(), 660)).toBe('ended');
      for (const r of [a, c, d]) expect(await store.recordNonce(r.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
    });

    test('expired sessions do not count against the limits', async () => {
      const limits = { ...LIMITS, maxSessions: 2, maxSessionsPerClient: 1 };
      const old = record('a10', { expiresAt: Date.now() - 1 });
      await store.createSession(old, limits);
      const r = record('a10');
      expect(await store.createSession(r, limits)).toEqual([]);
      expect(await store.createSession(record('b10'), limits)).toEqual([]);
    });

    test('handshake keys are recorded once', async () => {
      const key = `did:pqaid:${'1'.repeat(64)}:${hex(16)}`;
      expect(await store.recordHandshake(key, Date.now(), 660)).toBe(true);
      expect(await store.recordHandshake(key, Date.now(), 660)).toBe(false);
      expect(await store.recordHandshake(`${key}x`, Date.now(), 660)).toBe(true);
    });

    test('recordOnce keys are recorded once', async () => {
      const key = `v1:${hex(32)}`;
      expect(await store.recordOnce(key, 3600)).toBe(true);
      expect(await store.recordOnce(key, 3600)).toBe(false);
      expect(await store.recordOnce(`${key}x`, 3600)).toBe(true);
    });

    test('an MCP session belongs to the first DID that claims it', async () => {
      const mcp = `mcp-${hex(8)}`;
      const [alice, bob] = [record('a11').peerDid, record('b11').peerDid];
      expect(await store.mcpSessionOwner(mcp, 3600)).toBeUndefined();
      expect(await store.claimMcpSession(mcp, alice, 3600)).toBe(true);
      expect(await store.claimMcpSession(mcp, alice, 3600)).toBe(true);
      expect(await store.claimMcpSession(mcp, bob, 3600)).toBe(false);
      expect(await store.mcpSessionOwner(mcp, 3600)).toBe(alice);
    });

    test("a server request's nonce is taken once, per session", async () => {
      const [a, b] = [hex(16), hex(16)];
      const nonce = hex(16);
      await store.recordServerRequest(a, 'n:0', nonce, 3600);
      expect(await store.takeServerRequest(b, 'n:0')).toBeUndefined();
      expect(await store.takeServerRequest(a, 'n:1')).toBeUndefined();
      expect(await store.takeServerRequest(a, 'n:0')).toBe(nonce);
      expect(await store.takeServerRequest(a, 'n:0')).toBeUndefined();
    });

    test('instances on one backend: a session and its nonces are shared, each decision made once', async () => {
      const other = await sut.sibling();
      const r = record('a12');
      await store.createSession(r, LIMITS);
      expect(await other.getSession(r.sessionId)).toEqual(r);
      const nonce = hex(16);
      const t = Date.now();
      const outcomes = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? store : other).recordNonce(r.sessionId, nonce, t, 660)));
      expect(outcomes.filter((o) => o === 'accepted')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'replay')).toHaveLength(23);
      const key = `did:pqaid:${'2'.repeat(64)}:${hex(16)}`;
      const handshakes = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? store : other).recordHandshake(key, t, 660)));
      expect(handshakes.filter(Boolean)).toHaveLength(1);
      const mcp = `mcp-${hex(8)}`;
      const claims = await Promise.all([store.claimMcpSession(mcp, record('x').peerDid, 60), other.claimMcpSession(mcp, record('y').peerDid, 60)]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      await other.endSession(r.sessionId, 660);
      expect(await store.recordNonce(r.sessionId, hex(16), Date.now(), 660)).toBe('ended');
    });

    test("endPeerSessions ends every live session of one client, seen by every instance; others untouched", async () => {
      const other = await sut.sibling();
      expect(typeof store.endPeerSessions).toBe('function');
      const mine = [record('a14'), record('a14'), record('a14')];
      const expired = record('a14', { createdAt: Date.now() - 5000, expiresAt: Date.now() - 1000 });
      const theirs = record('b14');
      for (const r of [...mine, expired, theirs]) await store.createSession(r, LIMITS);
      await store.endSession(mine[2]!.sessionId, 660);
      const ended = await other.endPeerSessions!(mine[0]!.peerDid, 660);
      expect([...ended].sort()).toEqual([mine[0]!.sessionId, mine[1]!.sessionId].sort());
      for (const r of mine) expect(await store.recordNonce(r.sessionId, hex(16), Date.now(), 660)).toBe('ended');
      expect(await store.recordNonce(theirs.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
      expect(await other.endPeerSessions!(mine[0]!.peerDid, 660)).toEqual([]);
      expect(await store.endPeerSessions!(record('c14').peerDid, 660)).toEqual([]);
      // The client may open sessions again afterwards (whether it may is the server's decision, not the store's).
      const next = record('a14');
      await store.createSession(next, LIMITS);
      expect(await other.recordNonce(next.sessionId, hex(16), Date.now(), 660)).toBe('accepted');
    });

    test('concurrent handshakes of one client never leave it above its cap', async () => {
      const other = await sut.sibling();
      const limits = { ...LIMITS, maxSessionsPerClient: 2 };
      const rs = Array.from({ length: 8 }, (_, i) => record('a13', { createdAt: Date.now() + i }));
      await Promise.all(rs.map((r, i) => (i % 2 ? store : other).createSession(r, limits)));
      const outcomes = await Promise.all(rs.map((r) => store.recordNonce(r.sessionId, hex(16), Date.now(), 660)));
      expect(outcomes.filter((o) => o === 'accepted')).toHaveLength(2);
      expect(outcomes.filter((o) => o === 'ended')).toHaveLength(6);
    });
  });
}
