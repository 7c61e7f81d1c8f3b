/** The session-store contract on `MemorySessionStore`, and what only a memory store has to do: stay bounded. */
import { runSessionStoreContract } from '@pqc-mcp/test-kit';
import { MemorySessionStore } from '../src/store/memory.js';

runSessionStoreContract('MemorySessionStore', async ({ maxNoncesPerSession }) => {
  const store = new MemorySessionStore({ maxNoncesPerSession });
  return { store, sibling: async () => store, close: () => store.close() };
});

describe('MemorySessionStore bounds', () => {
  const limits = { maxSessions: 10, maxSessionsPerClient: 16, retentionSec: 660 };
  const record = (i: number) => ({
    sessionId: i.toString(16).padStart(32, '0'),
    profile: 2 as const,
    peerDid: `did:pqaid:${(i % 7).toString(16).padStart(64, '0')}`,
    peerAlgorithm: 'ML-DSA-65' as const,
    peerPublicKey: 'ab'.repeat(1952),
    localDid: `did:pqaid:${'5'.repeat(64)}`,
    createdAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
  });

  test('ended records are forgotten past maxEndedSessions (their sessions become unknown, never live again)', async () => {
    const store = new MemorySessionStore({ maxEndedSessions: 5 });
    for (let i = 1; i <= 30; i++) await store.createSession(record(i), limits);
    expect(store.size).toBe(10);
    expect(await store.recordNonce(record(1).sessionId, 'aa'.repeat(16), Date.now(), 660)).toBe('unknown');
    expect(await store.recordNonce(record(20).sessionId, 'aa'.repeat(16), Date.now(), 660)).toBe('ended');
    expect(await store.recordNonce(record(30).sessionId, 'aa'.repeat(16), Date.now(), 660)).toBe('accepted');
  });

  test('v1 keys are never dropped early: a full store refuses new ones (rate_limited)', async () => {
    const store = new MemorySessionStore({ maxOnceKeys: 3 });
    for (let i = 0; i < 3; i++) expect(await store.recordOnce(`k${i}`, 3600)).toBe(true);
    await expect(store.recordOnce('k3', 3600)).rejects.toMatchObject({ reason: 'rate_limited' });
    expect(await store.recordOnce('k0', 3600)).toBe(false);
  });

  test('handshake keys past the bound raise a floor instead of reopening a replay', async () => {
    const store = new MemorySessionStore({ maxHandshakes: 2 });
    const t = Date.now();
    expect(await store.recordHandshake('a', t, 660)).toBe(true);
    expect(await store.recordHandshake('b', t + 1, 660)).toBe(true);
    expect(await store.recordHandshake('c', t + 2, 660)).toBe(true); // drops a: nothing at or before t is new any more
    expect(await store.recordHandshake('a', t, 660)).toBe(false);
    expect(await store.recordHandshake('d', t + 3, 660)).toBe(true);
  });
});
