/**
 * The tool pin format and stores: the digest covers exactly the pinned fields, the memory store copies, and the file
 * store writes atomically with mode 0600, keeps other servers' pins, serializes its writes, and fails closed.
 */
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededIdentity } from '@pqc-mcp/test-kit';
import { MemoryToolPinStore, ToolPinError, toolDefinition, toolDigest, type ToolPin } from '../src/index.js';
import { FileToolPinStore } from '../src/node/index.js';

const A = seededIdentity(61, 'ML-DSA-44', 'pins-a').did;
const B = seededIdentity(62, 'ML-DSA-44', 'pins-b').did;

function pin(name: string, description: string, signer = A): ToolPin {
  const definition = { name, description, inputSchema: { type: 'object', properties: { x: { type: 'number' } } } };
  return { name, digest: toolDigest(definition), definition, signer, pinnedAt: 1_700_000_000_000 };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pqc-pins-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('toolDigest', () => {
  test('covers name, title, description, inputSchema, outputSchema, annotations; not _meta or icons; not key order', () => {
    const base = { name: 't', description: 'd', inputSchema: { type: 'object', properties: { a: {}, b: {} } } };
    const d = toolDigest(base);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(toolDigest({ inputSchema: { properties: { b: {}, a: {} }, type: 'object' }, description: 'd', name: 't' })).toBe(d);
    expect(toolDigest({ ...base, _meta: { x: 1 }, icons: [] })).toBe(d);
    expect(toolDefinition({ ...base, _meta: { x: 1 } })).toEqual(base);
    for (const change of [{ description: 'd ' }, { title: 'T' }, { annotations: { destructiveHint: true } }, { outputSchema: { type: 'object' } }, { name: 'T' }]) {
      expect(toolDigest({ ...base, ...change })).not.toBe(d);
    }
  });
});

describe('MemoryToolPinStore', () => {
  test('copies in and out; refuses pins whose digest does not match', async () => {
    const store = new MemoryToolPinStore();
    expect(await store.get(A)).toBeUndefined();
    const pins = [pin('x', 'one')];
    await store.set(A, pins);
    pins[0]!.definition.description = 'mutated';
    const got = await store.get(A);
    expect(got?.[0]?.definition.description).toBe('one');
    (got as ToolPin[]).pop();
    expect(await store.get(A)).toHaveLength(1);
    await expect(store.set(A, [{ ...pin('x', 'one'), digest: '0'.repeat(64) }])).rejects.toMatchObject({ reason: 'pin_store_corrupt' });
    await expect(store.set(A, [pin('x', 'one'), pin('x', 'two')])).rejects.toThrow(/pinned twice/);
    // Names are data, never keys of plain objects: '__proto__' and 'constructor' are tools like any other.
    await store.set(B, [pin('__proto__', 'p', B), pin('constructor', 'c', B)]);
    expect((await store.get(B))?.map((p) => [p.name, p.definition.description])).toEqual([
      ['__proto__', 'p'],
      ['constructor', 'c'],
    ]);
  });
});

describe('FileToolPinStore', () => {
  test('writes 0600 atomically, keeps other servers, serializes concurrent writes, leaves no temporary file', async () => {
    const sub = await mkdtemp(join(dir, 'ok-'));
    const path = join(sub, 'pins.json');
    const store = new FileToolPinStore(path);
    expect(await store.get(A)).toBeUndefined(); // no file yet
    await store.set(A, [pin('x', 'one')]);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await store.set(B, [pin('y', 'two', B)]);
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.set(A, [pin('x', `v${i}`)])));
    expect((await store.get(A))?.[0]?.definition.description).toBe('v9');
    expect((await new FileToolPinStore(path).get(B))?.map((p) => p.name)).toEqual(['y']);
    expect(await readdir(sub)).toEqual(['pins.json']);
    // A file made 0644 by someone is still read (not writable by others), and rewritten 0600.
    await chmod(path, 0o644);
    await store.set(A, [pin('x', 'again')]);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  test('a corrupt file is refused by get and set, and never overwritten', async () => {
    const path = join(dir, 'corrupt.json');
    await writeFile(path, '{"version":1,"servers":[', { mode: 0o600 });
    const store = new FileToolPinStore(path);
    await expect(store.get(A)).rejects.toBeInstanceOf(ToolPinError);
    await expect(store.set(A, [pin('x', 'one')])).rejects.toMatchObject({ reason: 'pin_store_corrupt' });
    expect(await readFile(path, 'utf8')).toBe('{"version":1,"servers":[');
  });

  test('a server listed twice, a pin signed by no DID, a group-writable file', async () => {
    const path = join(dir, 'twice.json');
    const entry = { serverDid: A, tools: [pin('x', 'one')] };
    await writeFile(path, JSON.stringify({ version: 1, servers: [entry, entry] }), { mode: 0o600 });
    await expect(new FileToolPinStore(path).get(A)).rejects.toThrow(/appears twice/);
    await writeFile(path, JSON.stringify({ version: 1, servers: [{ serverDid: A, tools: [{ ...pin('x', 'one'), signer: 'me' }] }] }));
    await expect(new FileToolPinStore(path).get(A)).rejects.toThrow(/no signer DID/);
    await writeFile(path, JSON.stringify({ version: 1, servers: [entry] }));
    await chmod(path, 0o620);
    await expect(new FileToolPinStore(path).get(A)).rejects.toMatchObject({ reason: 'pin_store_insecure' });
  });

  test('validates its arguments', async () => {
    expect(() => new FileToolPinStore('')).toThrow(TypeError);
    await expect(new FileToolPinStore(join(dir, 'never.json')).set('not-a-did', [])).rejects.toThrow(TypeError);
  });
});
