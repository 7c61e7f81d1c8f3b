/**
 * The code of one crypto worker of the pool (`pool.ts`). It is started as its own module, so it imports nothing of
 * ours: only `node:` modules and noble, whose URL it is given. Written in erasable TypeScript, so that Node runs it
 * from the sources too (type stripping) and from `dist` as compiled.
 *
 * Keys stay here: a key's material is sent once (`missing` asks for it), then jobs name the key by id. The least
 * recently used prepared keys are dropped past `maxKeys`.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

/** What the pool tells a worker when it starts it. */
export interface PoolWorkerData {
  readonly engine: 'noble' | 'node';
  /** The file URL of noble's ML-DSA module (engine `noble`). */
  readonly nobleUrl: string | undefined;
  readonly maxKeys: number;
}

/** A job: sign or verify a message with a key the worker holds (or is given with `material`). */
export interface PoolJobMessage {
  readonly job: number;
  readonly op: 'sign' | 'verify';
  readonly alg: string;
  readonly key: number;
  readonly msg: Uint8Array;
  readonly ctx: Uint8Array;
  readonly sig?: Uint8Array;
  /** Seed or PKCS#8 (to sign), raw key or SPKI (to verify): sent when the worker lacks the key. */
  readonly material?: Uint8Array;
}

/** A worker's answer. */
export type PoolWorkerReply =
  | { readonly ready: true }
  | { readonly job: number; readonly result: Uint8Array | boolean }
  | { readonly job: number; readonly missing: true }
  | { readonly job: number; readonly error: string };

interface NobleDsa {
  keygen(seed: Uint8Array): { secretKey: Uint8Array };
  sign(msg: Uint8Array, secretKey: Uint8Array, opts: { context: Uint8Array }): Uint8Array;
  verify(sig: Uint8Array, msg: Uint8Array, publicKey: Uint8Array, opts: { context: Uint8Array }): boolean;
}

type Prepared = { readonly key: KeyObject } | { readonly dsa: NobleDsa; readonly secretKey?: Uint8Array; readonly publicKey?: Uint8Array };

const port = parentPort!;
const { engine, nobleUrl, maxKeys } = workerData as PoolWorkerData;
const keys = new Map<number, Prepared>();
let noble: Record<string, NobleDsa> = {};

function prepare(m: PoolJobMessage, material: Uint8Array): Prepared {
  if (engine === 'node') {
    const der = Buffer.from(material.buffer, material.byteOffset, material.byteLength);
    return { key: m.op === 'sign' ? createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) : createPublicKey({ key: der, format: 'der', type: 'spki' }) };
  }
  const dsa = noble[m.alg];
  if (!dsa) throw new Error(`unsupported algorithm ${m.alg}`);
  return m.op === 'sign' ? { dsa, secretKey: dsa.keygen(material).secretKey } : { dsa, publicKey: material };
}

function run(entry: Prepared, m: PoolJobMessage): Uint8Array | boolean {
  try {
    if ('key' in entry) {
      return m.op === 'sign'
        ? new Uint8Array(nodeSign(null, m.msg, { key: entry.key, context: m.ctx }))
        : nodeVerify(null, m.msg, { key: entry.key, context: m.ctx }, m.sig!) === true;
    }
    return m.op === 'sign' ? entry.dsa.sign(m.msg, entry.secretKey!, { context: m.ctx }) : entry.dsa.verify(m.sig!, m.msg, entry.publicKey!, { context: m.ctx }) === true;
  } catch (err) {
    if (m.op === 'verify') return false; // a malformed signature or key is a failed verification, as on the main thread
    throw err;
  }
}

/** The key a job names, most recently used last; undefined when the worker must be sent its material. */
function keyFor(m: PoolJobMessage): Prepared | undefined {
  let entry = keys.get(m.key);
  if (entry !== undefined) keys.delete(m.key);
  else if (m.material !== undefined) {
    entry = prepare(m, m.material);
    if (keys.size >= maxKeys) keys.delete(keys.keys().next().value!);
  } else return undefined;
  keys.set(m.key, entry);
  return entry;
}

function handle(m: PoolJobMessage): void {
  try {
    const entry = keyFor(m);
    if (entry === undefined) {
      port.postMessage({ job: m.job, missing: true } satisfies PoolWorkerReply);
      return;
    }
    const result = run(entry, m);
    if (typeof result === 'boolean') {
      port.postMessage({ job: m.job, result } satisfies PoolWorkerReply);
      return;
    }
    // Transfer the signature's own buffer (a view on a larger one is copied first).
    const own = result.byteOffset === 0 && result.byteLength === result.buffer.byteLength ? result : result.slice();
    port.postMessage({ job: m.job, result: own } satisfies PoolWorkerReply, [own.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ job: m.job, error: err instanceof Error ? err.message : String(err) } satisfies PoolWorkerReply);
  }
}

if (engine === 'noble') {
  const m = (await import(nobleUrl!)) as { ml_dsa44: NobleDsa; ml_dsa65: NobleDsa; ml_dsa87: NobleDsa };
  noble = { 'ML-DSA-44': m.ml_dsa44, 'ML-DSA-65': m.ml_dsa65, 'ML-DSA-87': m.ml_dsa87 };
}
port.on('message', handle);
port.postMessage({ ready: true } satisfies PoolWorkerReply);
