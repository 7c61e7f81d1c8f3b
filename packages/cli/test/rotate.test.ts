/**
 * `pqc-mcp rotate` (docs/PROTOCOL.md §11), with the real binary: the new identity (mode 0600) and the chain file;
 * the gateway serving the chain (--rotations) with the new identity, and `pqc-mcp call` pinned to the old DID
 * following it, over one and two rotations; usage errors for every way the files can be wrong.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { AgentIdentity, verifyRotationChain, type RotationRecord } from '@pqc-mcp/core';
import { createTestMcpApp, expectCleanError, runCli, seededIdentity, startGatewayProcess, startPlainUpstream, tempDir, writeIdentity, type PlainUpstream } from './helpers.js';

const tmp = tempDir();
const OLD = seededIdentity(71, 'ML-DSA-65', 'gateway');
const CLIENT = seededIdentity(72, 'ML-DSA-65', 'client');
let oldFile: string;
let clientFile: string;
let upstream: PlainUpstream;

beforeAll(async () => {
  oldFile = await writeIdentity(OLD, tmp.path('old.json'));
  clientFile = await writeIdentity(CLIENT, tmp.path('client.json'));
  upstream = await startPlainUpstream(createTestMcpApp({ json: true }));
});
afterAll(async () => {
  await upstream.close();
  tmp.cleanup();
});

const chainOf = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as RotationRecord[];

describe('rotate', () => {
  test('writes the new identity (0600) and the chain; the record is signed by the old key and verifies', async () => {
    const out = tmp.path('new.json');
    const record = tmp.path('rotation.json');
    const result = await runCli(['rotate', '--identity', oldFile, '--out', out, '--record', record, '--algorithm', 'ML-DSA-87', '--overlap', '1d', '--effective-at', '2026-12-01T00:00:00Z']);
    expect(result.code).toBe(0);
    const did = result.stdout.trim();
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const next = await AgentIdentity.load(out);
    expect(next).toMatchObject({ did, algorithm: 'ML-DSA-87', name: 'gateway' });
    const chain = chainOf(record);
    expect(chain).toHaveLength(1);
    expect(chain[0]).toMatchObject({
      type: 'pqc_key_rotation',
      v: 2,
      old_did: OLD.did,
      new_did: did,
      new_algorithm: 'ML-DSA-87',
      effective_at: '2026-12-01T00:00:00.000000+00:00',
      old_valid_until: '2026-12-02T00:00:00.000000+00:00',
    });
    const verified = await verifyRotationChain(chain, { fromDid: OLD.did, to: { did, publicKey: next.publicKeyHex }, now: Date.parse('2026-12-01T12:00:00Z') });
    expect(verified.did).toBe(did);
    expect(result.stderr).toMatch(/--rotations/);
    expect(result.stdout + result.stderr).not.toContain(JSON.parse(readFileSync(out, 'utf8')).priv as string);
  });

  test('the gateway serves the chain with the new identity; `call` pinned to the old DID follows it (one rotation, then two)', async () => {
    const first = tmp.path('gw-1.json');
    const firstChain = tmp.path('gw-1.rotation.json');
    const one = await runCli(['rotate', '--identity', oldFile, '--out', first, '--record', firstChain]);
    expect(one.code).toBe(0);
    const firstDid = one.stdout.trim();

    let gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', first, '--rotations', firstChain]);
    try {
      expect(gateway.did).toBe(firstDid);
      const info = (await (await fetch(new URL('pqc/handshake', gateway.url))).json()) as { did: string; rotations: RotationRecord[] };
      expect(info).toMatchObject({ did: firstDid, rotations: chainOf(firstChain) });
      const called = await runCli(['call', gateway.url, 'add', '{"a":2,"b":40}', '--identity', clientFile, '--server-did', OLD.did]);
      expect(called).toMatchObject({ code: 0, stdout: '42\n' });
      expect(called.stderr).toContain(`the server rotated its key: followed 1 signed record from ${OLD.did} to ${firstDid}`);
    } finally {
      await gateway.stop();
    }

    const second = tmp.path('gw-2.json');
    const secondChain = tmp.path('gw-2.rotation.json');
    const two = await runCli(['rotate', '--identity', first, '--previous', firstChain, '--out', second, '--record', secondChain, '--algorithm', 'ML-DSA-44']);
    expect(two.code).toBe(0);
    expect(chainOf(secondChain).map((r) => r.new_did)).toEqual([firstDid, two.stdout.trim()]);
    gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', second, '--rotations', secondChain]);
    try {
      const called = await runCli(['call', gateway.url, 'echo', '{"text":"still here"}', '--identity', clientFile, '--server-did', OLD.did]);
      expect(called).toMatchObject({ code: 0, stdout: 'still here\n' });
      expect(called.stderr).toContain('followed 2 signed records');
      // Pinned to the new DID already: nothing to follow.
      const direct = await runCli(['call', gateway.url, 'echo', '{"text":"x"}', '--identity', clientFile, '--server-did', two.stdout.trim()]);
      expect(direct).toMatchObject({ code: 0, stderr: '' });
    } finally {
      await gateway.stop();
    }
  }, 120_000);

  test('a forged chain file: the gateway refuses to start (exit 2), `call` is never reached', async () => {
    const out = tmp.path('forge.json');
    const record = tmp.path('forge.rotation.json');
    expect((await runCli(['rotate', '--identity', oldFile, '--out', out, '--record', record])).code).toBe(0);
    const chain = chainOf(record);
    chain[0]!.old_valid_until = '2099-01-01T00:00:00.000000+00:00';
    const forged = tmp.path('forged.rotation.json');
    writeFileSync(forged, JSON.stringify(chain));
    const refused = await runCli(['gateway', '--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', out, '--rotations', forged]);
    expectCleanError(refused, 2, /rotations.*invalid_signature/);
    // A chain of another identity than --identity.
    const other = await runCli(['gateway', '--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', oldFile, '--rotations', record]);
    expectCleanError(other, 2, /rotations.*chain_broken/);
  }, 60_000);

  const fresh = () => tmp.path(`fresh-${Math.random().toString(16).slice(2)}.json`);
  const usageCases: [string, () => string[], RegExp][] = [
    ['no --identity', () => ['rotate', '--out', fresh(), '--record', fresh()], /--identity is required/],
    ['no --out', () => ['rotate', '--identity', oldFile, '--record', fresh()], /--out is required/],
    ['no --record', () => ['rotate', '--identity', oldFile, '--out', fresh()], /--record is required/],
    ['a bad --overlap', () => ['rotate', '--identity', oldFile, '--out', fresh(), '--record', fresh(), '--overlap', 'a week'], /--overlap must be a duration/],
    ['a bad --effective-at', () => ['rotate', '--identity', oldFile, '--out', fresh(), '--record', fresh(), '--effective-at', 'tomorrow'], /--effective-at must be an RFC 3339/],
    ['a bad --algorithm', () => ['rotate', '--identity', oldFile, '--out', fresh(), '--record', fresh(), '--algorithm', 'RSA'], /--algorithm must be one of/],
    ['--out is the current identity', () => ['rotate', '--identity', oldFile, '--out', oldFile, '--record', fresh()], /must be different files/],
  ];
  test.each(usageCases)('usage error: %s', async (_name, args, message) => {
    expectCleanError(await runCli(args()), 2, message);
  });

  test('existing files are never overwritten without --force; no new identity without its record', async () => {
    const existing = tmp.path('exists.json');
    writeFileSync(existing, 'keep me');
    expectCleanError(await runCli(['rotate', '--identity', oldFile, '--out', existing, '--record', fresh()]), 2, /already exists.*--force/);
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    const out = fresh();
    expectCleanError(await runCli(['rotate', '--identity', oldFile, '--out', out, '--record', existing]), 2, /already exists.*--force/);
    expect(() => statSync(out)).toThrow();
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
  });

  test('--previous must end at the current identity; --help', async () => {
    const unrelated = tmp.path('unrelated.rotation.json');
    writeFileSync(unrelated, JSON.stringify([{ new_did: CLIENT.did }]));
    expectCleanError(await runCli(['rotate', '--identity', oldFile, '--previous', unrelated, '--out', fresh(), '--record', fresh()]), 2, /does not rotate to the current identity/);
    const help = await runCli(['rotate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pqc-mcp rotate --identity FILE --out NEW-FILE --record CHAIN-FILE/);
  });
});
