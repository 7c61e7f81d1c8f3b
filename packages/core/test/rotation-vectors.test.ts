/**
 * docs/vectors/rotation.json (docs/PROTOCOL.md §11): the file is what its generator makes (fixed seeds, deterministic
 * signatures), every record's signing input and digest are byte for byte, and every case is decided as the vector says
 * by the client (`verifyRotationChain`, on each backend) and, for the server's own chains, by `readRotationRecords`.
 */
import { sha3_256Hex } from '../src/crypto/hash.js';
import { RotationError, canonicalJson, parseLossless, verifyRotationChain, type JsonObject } from '../src/index.js';
import { readRotationRecords } from '../src/rotation.js';
import { readVector } from '@pqc-mcp/test-kit';
import { buildRotationVectors, type RotationVectors } from './fixtures/rotation-vectors.js';
import { BACKENDS } from './helpers.js';

const vectors = readVector<RotationVectors>('rotation.json');
const keyOf = (name: string) => vectors.keys.find((k) => k.name === name)!;
const recordOf = (name: string) => vectors.records.find((r) => r.name === name)!;

test('the file is what the generator makes: fixed seeds, deterministic signatures', () => {
  expect(buildRotationVectors()).toEqual(vectors);
  expect(vectors.context).toBe('pqc-mcp/v2/key-rotation');
});

test('the first key is the ML-DSA-65 server of protocol.json', () => {
  const protocol = readVector<{ identities: { role: string; algorithm: string; did: string }[] }>('protocol.json');
  expect(keyOf('A').did).toBe(protocol.identities.find((i) => i.role === 'server' && i.algorithm === 'ML-DSA-65')!.did);
});

test.each(vectors.records.map((r) => [r.name, r] as const))('record %s: signing input and digest', (_name, r) => {
  const tree = parseLossless(r.record) as JsonObject;
  const unsigned = new Map(tree);
  unsigned.delete('signature');
  if (!r.name.includes('after signing')) expect(canonicalJson(unsigned)).toBe(r.signing_input);
  expect(sha3_256Hex(r.signing_input)).toBe(r.digest);
});

describe.each(BACKENDS)('client on the %s backend', (backend) => {
  test.each(vectors.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const chain = `[${c.chain.map((name) => recordOf(name).record).join(',')}]`;
    const to = keyOf(c.to);
    const outcome = await verifyRotationChain(chain, {
      fromDid: keyOf(c.from).did,
      to: { did: to.did, publicKey: to.public_key },
      now: Date.parse(c.now),
      clockSkewSec: vectors.clock_skew_sec,
      backend,
    }).catch((err: unknown) => err);
    if (c.expect === 'valid') {
      expect(outcome).toMatchObject({ fromDid: keyOf(c.from).did, did: to.did, algorithm: to.algorithm, publicKey: to.public_key });
    } else {
      expect(outcome).toBeInstanceOf(RotationError);
      expect(outcome).toMatchObject({ reason: 'peer_mismatch', rotationReason: c.expect });
    }
  });
});

describe('server: its own chain at start-up', () => {
  const identityOf = (name: string) => ({ did: keyOf(name).did, publicKeyHex: keyOf(name).public_key });
  const records = (...names: string[]) => names.map((n) => JSON.parse(recordOf(n).record) as unknown);

  test('a valid chain is read as plain records', () => {
    const read = readRotationRecords(records('A to B', 'B to C'), identityOf('C'));
    expect(read.map((r) => r.new_did)).toEqual([keyOf('B').did, keyOf('C').did]);
  });

  test.each([
    ['A to B, signed with the message context', 'B', 'invalid_signature'],
    ['A to B, signed by X', 'B', 'invalid_signature'],
    ['A to B, unsigned', 'B', 'unsigned'],
    ['A to B, old_valid_until moved after signing', 'B', 'invalid_signature'],
    ['A to B', 'C', 'chain_broken'],
  ])('%s (server %s): %s', (name, server, reason) => {
    expect(() => readRotationRecords(records(name), identityOf(server))).toThrow(expect.objectContaining({ rotationReason: reason }));
  });
});
