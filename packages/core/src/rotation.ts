/**
 * Key rotation (docs/PROTOCOL.md §11, a repository extension to revision 2): a server that replaces its key publishes
 * a record signed by the old key naming the new one; records chain (old → new → newer). A client pinned to an old key
 * follows the chain from its pinned key, each record verified under the key the chain has established so far, and
 * refuses anything else with a `rotationReason`.
 */
import { fromHex, isLowerHex, toHex, utf8 } from './bytes.js';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, isAlgorithm, type Algorithm } from './crypto/algorithms.js';
import { sha3_256 } from './crypto/hash.js';
import { verifyNobleSync } from './crypto/noble.js';
import type { BackendPreference } from './crypto/select.js';
import { HandshakeError } from './errors.js';
import { AgentIdentity, PeerIdentity, didFromPublicKey, isDid } from './identity.js';
import { canonicalJson } from './json/canonical.js';
import { JsonNumber, parseLossless, toPlain, type JsonObject, type JsonValue } from './json/lossless.js';
import {
  DEFAULT_CLOCK_SKEW_SEC,
  DEFAULT_ROTATION_OVERLAP_SEC,
  MAX_ROTATION_CHAIN,
  ROTATION_CONTEXT,
  ROTATION_RECORD_TYPE,
} from './protocol.js';
import { formatTimestamp, nowMs, parseTimestamp, type Clock } from './time.js';

/** A key rotation record as it travels (§11): signed by the old key with the context `pqc-mcp/v2/key-rotation`. */
export interface RotationRecord {
  type: 'pqc_key_rotation';
  v: 2;
  old_did: string;
  old_algorithm: Algorithm;
  old_public_key: string;
  new_did: string;
  new_algorithm: Algorithm;
  new_public_key: string;
  /** From when the new key answers (RFC 3339). */
  effective_at: string;
  /** Until when a client pinned to the old key may follow this record (the end of the overlap, RFC 3339). */
  old_valid_until: string;
  signature: string;
}

/**
 * Why a rotation chain was refused:
 * `malformed` (not a list of records of the right shape), `unsigned` (a record without signature), `did_mismatch`
 * (a DID that is not its key's), `invalid_signature` (forged, tampered, or signed with another context),
 * `not_pinned` (no record starts at the pinned key: a chain of another server), `chain_broken` (a gap, or the chain
 * does not end at the key that answered), `out_of_order` (records not oldest first), `key_reused` (a key that appears
 * twice, or a rotation back to a key the client retired), `not_yet_effective` (`effective_at` later than now plus the
 * clock skew), `overlap_expired` (the pinned key's `old_valid_until` earlier than now minus the clock skew).
 */
export type RotationReason =
  | 'malformed'
  | 'unsigned'
  | 'did_mismatch'
  | 'invalid_signature'
  | 'not_pinned'
  | 'chain_broken'
  | 'out_of_order'
  | 'key_reused'
  | 'not_yet_effective'
  | 'overlap_expired';

/**
 * A refused rotation chain. Its `reason` is `peer_mismatch` (the server that answered is not the pinned one, and the
 * chain does not prove otherwise); `rotationReason` says what was wrong with the chain.
 */
export class RotationError extends HandshakeError {
  readonly rotationReason: RotationReason;

  constructor(rotationReason: RotationReason, detail: string) {
    super('peer_mismatch', `handshake rejected (peer_mismatch): rotation refused (${rotationReason}): ${detail}`);
    this.rotationReason = rotationReason;
  }
}

/** A record as read: its members checked, its signed digest computed. */
interface ParsedRecord {
  readonly oldDid: string;
  readonly oldAlgorithm: Algorithm;
  readonly oldKey: string;
  readonly newDid: string;
  readonly newAlgorithm: Algorithm;
  readonly newKey: string;
  readonly effectiveAt: number;
  readonly oldValidUntil: number;
  readonly signature: string;
  /** SHA3-256 of pqc-json(the record without signature). */
  readonly digest: Uint8Array;
  /** The record as a plain object (what a server serves and an event reports). */
  readonly plain: RotationRecord;
}

/** What a chain that was followed established. */
export interface RotationChain {
  /** The DID the client was pinned to. */
  readonly fromDid: string;
  /** The DID, algorithm and public key (hex) the chain leads to. */
  readonly did: string;
  readonly algorithm: Algorithm;
  readonly publicKey: string;
  /** The records followed, oldest first (the first one signed by the pinned key). */
  readonly records: readonly RotationRecord[];
  /** Every DID the chain retired (the pinned one first): a client never goes back to one of them. */
  readonly retiredDids: readonly string[];
}

/** Options of `verifyRotationChain`. */
export interface VerifyRotationOptions {
  /** The pinned DID the chain must start from. */
  fromDid: string;
  /** The pinned public key (hex or bytes), when the client pinned a key: the first record must name it. */
  fromPublicKey?: string | Uint8Array;
  /** The key that answered: the chain must end at it. */
  to?: { did: string; publicKey: string | Uint8Array };
  /** DIDs the client retired before: a chain leading back to one of them is `key_reused`. */
  retiredDids?: Iterable<string>;
  /** The client's clock (default now). */
  now?: Clock;
  /** Allowed clock skew on `effective_at` and `old_valid_until`, seconds (default 300). */
  clockSkewSec?: number;
  /** Crypto backend for the signatures (default: the fastest here). */
  backend?: BackendPreference;
}

function refuse(reason: RotationReason, detail: string): never {
  throw new RotationError(reason, detail);
}

function hexOf(key: string | Uint8Array): string {
  return typeof key === 'string' ? key : toHex(key);
}

/** A list of records from text, a parsed list, or lossless JSON: as lossless objects, so digests match the sender's. */
function toLosslessList(input: unknown): JsonValue[] {
  let tree: JsonValue;
  try {
    if (typeof input === 'string') tree = parseLossless(input);
    else if (input instanceof Map) tree = [input as JsonObject];
    else if (Array.isArray(input) && input.every((r) => r instanceof Map)) tree = input as JsonValue[];
    else tree = parseLossless(JSON.stringify(input) ?? 'null');
  } catch {
    refuse('malformed', 'the rotation records are not JSON');
  }
  if (!Array.isArray(tree)) tree = [tree];
  if (tree.length === 0) refuse('malformed', 'the rotation chain is empty');
  if (tree.length > MAX_ROTATION_CHAIN) refuse('malformed', `the rotation chain holds more than ${MAX_ROTATION_CHAIN} records`);
  return tree;
}

function field(record: JsonObject, key: string, index: number): JsonValue {
  const value = record.get(key);
  if (value === undefined) refuse('malformed', `record ${index}: ${key} is missing`);
  return value;
}

function keyOf(record: JsonObject, prefix: 'old' | 'new', index: number): { did: string; algorithm: Algorithm; key: string } {
  const did = field(record, `${prefix}_did`, index);
  const algorithm = field(record, `${prefix}_algorithm`, index);
  const key = field(record, `${prefix}_public_key`, index);
  if (!isDid(did)) refuse('malformed', `record ${index}: ${prefix}_did is not a did:pqaid DID`);
  if (!isAlgorithm(algorithm)) refuse('malformed', `record ${index}: ${prefix}_algorithm is not an ML-DSA algorithm`);
  if (!isLowerHex(key, PUBLIC_KEY_BYTES[algorithm])) refuse('malformed', `record ${index}: ${prefix}_public_key is not a ${algorithm} key in lowercase hex`);
  if (didFromPublicKey(fromHex(key)) !== did) refuse('did_mismatch', `record ${index}: ${prefix}_did is not the DID of ${prefix}_public_key`);
  return { did, algorithm, key };
}

function timeOf(record: JsonObject, key: string, index: number): number {
  const ms = parseTimestamp(field(record, key, index));
  if (Number.isNaN(ms)) refuse('malformed', `record ${index}: ${key} is not an RFC 3339 date-time with offset`);
  return ms;
}

/** The members of a record, and nothing else (a record is re-served as parsed: no member whose form could change). */
const RECORD_MEMBERS = new Set([
  'type',
  'v',
  'old_did',
  'old_algorithm',
  'old_public_key',
  'new_did',
  'new_algorithm',
  'new_public_key',
  'effective_at',
  'old_valid_until',
  'signature',
]);

function parseRecord(value: JsonValue, index: number): ParsedRecord {
  if (!(value instanceof Map)) refuse('malformed', `record ${index} is not a JSON object`);
  for (const key of value.keys()) {
    if (!RECORD_MEMBERS.has(key)) refuse('malformed', `record ${index}: unknown member ${JSON.stringify(key)}`);
  }
  if (value.get('type') !== ROTATION_RECORD_TYPE) refuse('malformed', `record ${index}: type is not ${ROTATION_RECORD_TYPE}`);
  const v = value.get('v');
  if (!(v instanceof JsonNumber) || v.lexeme !== '2') refuse('malformed', `record ${index}: v is not 2`);
  const signature = value.get('signature');
  if (signature === undefined) refuse('unsigned', `record ${index} carries no signature`);
  const old = keyOf(value, 'old', index);
  const next = keyOf(value, 'new', index);
  if (!isLowerHex(signature, SIGNATURE_BYTES[old.algorithm])) {
    refuse('malformed', `record ${index}: signature is not a ${old.algorithm} signature in lowercase hex`);
  }
  if (old.did === next.did) refuse('key_reused', `record ${index} rotates a key to itself`);
  const effectiveAt = timeOf(value, 'effective_at', index);
  const oldValidUntil = timeOf(value, 'old_valid_until', index);
  if (oldValidUntil < effectiveAt) refuse('malformed', `record ${index}: old_valid_until is earlier than effective_at`);
  const unsigned: JsonObject = new Map(value);
  unsigned.delete('signature');
  return {
    oldDid: old.did,
    oldAlgorithm: old.algorithm,
    oldKey: old.key,
    newDid: next.did,
    newAlgorithm: next.algorithm,
    newKey: next.key,
    effectiveAt,
    oldValidUntil,
    signature,
    digest: sha3_256(utf8(canonicalJson(unsigned))),
    plain: toPlain(value) as RotationRecord,
  };
}

/** Every record read, and the chain's links checked: each record starts where the one before ends, oldest first. */
function parseChain(input: unknown): ParsedRecord[] {
  const records = toLosslessList(input).map(parseRecord);
  const seen = new Set<string>([records[0]!.oldDid]);
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    if (seen.has(record.newDid)) refuse('key_reused', `record ${i} rotates to ${record.newDid}, which the chain used before`);
    seen.add(record.newDid);
    const next = records[i + 1];
    if (next === undefined) break;
    if (next.oldDid !== record.newDid || next.oldKey !== record.newKey || next.oldAlgorithm !== record.newAlgorithm) {
      const elsewhere = records.some((r, j) => j !== i + 1 && r.oldDid === record.newDid) || records.some((r, j) => j > i && r.newDid === record.oldDid);
      if (elsewhere) refuse('out_of_order', `record ${i + 1} does not continue record ${i}: records must be listed oldest first`);
      refuse('chain_broken', `record ${i + 1} does not start at the key record ${i} rotates to (a gap in the chain)`);
    }
    if (!(next.effectiveAt > record.effectiveAt)) refuse('out_of_order', `record ${i + 1} takes effect no later than record ${i}`);
  }
  return records;
}

/** The part of a checked chain that starts at `fromDid` (and at `fromPublicKey`, when given). */
function fromPinned(records: ParsedRecord[], fromDid: string, fromPublicKey: string | Uint8Array | undefined): ParsedRecord[] {
  const start = records.findIndex((r) => r.oldDid === fromDid);
  if (start < 0) refuse('not_pinned', `no record is signed by the pinned key ${fromDid}: this chain is not the pinned server's`);
  if (fromPublicKey !== undefined && records[start]!.oldKey !== hexOf(fromPublicKey)) {
    refuse('not_pinned', 'the first record does not name the pinned public key');
  }
  return records.slice(start);
}

function checkTarget(followed: ParsedRecord[], to: VerifyRotationOptions['to'], retired: ReadonlySet<string>): void {
  for (const record of followed) {
    if (retired.has(record.newDid)) refuse('key_reused', `the chain leads back to ${record.newDid}, a key this client retired`);
  }
  const last = followed[followed.length - 1]!;
  if (to !== undefined && (last.newDid !== to.did || last.newKey !== hexOf(to.publicKey))) {
    refuse('chain_broken', `the chain ends at ${last.newDid}, not at the key that answered (${to.did})`);
  }
}

function checkTimes(followed: ParsedRecord[], now: number, skewMs: number): void {
  const first = followed[0]!;
  if (first.oldValidUntil < now - skewMs) {
    refuse('overlap_expired', `the pinned key was retired at ${formatTimestamp(first.oldValidUntil)}: re-pin this server out of band`);
  }
  for (const record of followed) {
    if (record.effectiveAt > now + skewMs) refuse('not_yet_effective', `the rotation to ${record.newDid} takes effect at ${formatTimestamp(record.effectiveAt)}`);
  }
}

function result(fromDid: string, followed: ParsedRecord[]): RotationChain {
  const last = followed[followed.length - 1]!;
  return Object.freeze({
    fromDid,
    did: last.newDid,
    algorithm: last.newAlgorithm,
    publicKey: last.newKey,
    records: Object.freeze(followed.map((r) => r.plain)),
    retiredDids: Object.freeze(followed.map((r) => r.oldDid)),
  });
}

/**
 * Client: follows a rotation chain (records oldest first: a JSON text, a list of records, or lossless JSON) from the
 * pinned DID. Checks, in order: every record's shape and DIDs, the links (no gap, no key twice, oldest first), that a
 * record starts at the pinned key, that the chain ends at `to` and never at a retired key, every signature followed
 * (each under the key the chain established before it, the first under the pinned key, context
 * `pqc-mcp/v2/key-rotation`), then the times (the pinned key's overlap not over, every rotation in effect, each within
 * the clock skew). Records before the pinned one are read but not trusted. Throws `RotationError`.
 */
export async function verifyRotationChain(input: unknown, options: VerifyRotationOptions): Promise<RotationChain> {
  if (!isDid(options?.fromDid)) throw new TypeError('verifyRotationChain: fromDid must be a did:pqaid DID');
  const followed = fromPinned(parseChain(input), options.fromDid, options.fromPublicKey);
  checkTarget(followed, options.to, new Set(options.retiredDids ?? []));
  for (const [i, record] of followed.entries()) {
    const key = new PeerIdentity(record.oldAlgorithm, record.oldKey, { backend: options.backend });
    if (!(await key.verifyingKey.verify(record.digest, fromHex(record.signature), ROTATION_CONTEXT))) {
      refuse('invalid_signature', `record ${i} from the pinned key is not signed by ${record.oldDid} as a rotation`);
    }
  }
  checkTimes(followed, nowMs(options.now), (options.clockSkewSec ?? DEFAULT_CLOCK_SKEW_SEC) * 1000);
  return result(options.fromDid, followed);
}

/**
 * Server: reads its own rotation records (oldest first) at start-up and checks them synchronously: shape, links and
 * every signature, and that the chain ends at `identity`. Returns the records as plain objects. Throws `RotationError`.
 */
export function readRotationRecords(input: unknown, identity: { did: string; publicKeyHex: string }): RotationRecord[] {
  const records = parseChain(input);
  const last = records[records.length - 1]!;
  if (last.newDid !== identity.did || last.newKey !== identity.publicKeyHex) {
    refuse('chain_broken', `the last record rotates to ${last.newDid}, not to this server's key ${identity.did}`);
  }
  for (const [i, record] of records.entries()) {
    if (!verifyNobleSync(record.oldAlgorithm, fromHex(record.oldKey), record.digest, fromHex(record.signature), ROTATION_CONTEXT)) {
      refuse('invalid_signature', `record ${i} is not signed by ${record.oldDid} as a rotation`);
    }
  }
  return records.map((r) => r.plain);
}

/** Options of `createRotationRecord`. */
export interface CreateRotationOptions {
  /** When the new key takes effect (default: now). */
  effectiveAt?: Clock;
  /** How long after `effectiveAt` clients pinned to the old key may still follow the record, seconds (default 7 days). */
  overlapSec?: number;
}

/**
 * Makes the record by which `oldIdentity` hands over to `next` (an identity, or only its public side): signed by the
 * old key, context `pqc-mcp/v2/key-rotation` (§11).
 */
export async function createRotationRecord(
  oldIdentity: AgentIdentity,
  next: AgentIdentity | PeerIdentity,
  options: CreateRotationOptions = {},
): Promise<RotationRecord> {
  if (!(oldIdentity instanceof AgentIdentity)) throw new TypeError('createRotationRecord: the old identity must be an AgentIdentity (it signs)');
  if (next.did === oldIdentity.did) throw new TypeError('createRotationRecord: the new key is the old key');
  const overlapSec = options.overlapSec ?? DEFAULT_ROTATION_OVERLAP_SEC;
  if (typeof overlapSec !== 'number' || !Number.isFinite(overlapSec) || overlapSec < 0) throw new TypeError('createRotationRecord: overlapSec must be a number >= 0');
  const effectiveAt = nowMs(options.effectiveAt);
  const body = {
    type: ROTATION_RECORD_TYPE,
    v: 2,
    old_did: oldIdentity.did,
    old_algorithm: oldIdentity.algorithm,
    old_public_key: oldIdentity.publicKeyHex,
    new_did: next.did,
    new_algorithm: next.algorithm,
    new_public_key: next.publicKeyHex,
    effective_at: formatTimestamp(effectiveAt),
    old_valid_until: formatTimestamp(effectiveAt + overlapSec * 1000),
  } as const;
  const signature = await oldIdentity.sign(sha3_256(utf8(canonicalJson(body))), ROTATION_CONTEXT);
  return { ...body, signature: toHex(signature) };
}

/** The records of `chain` from the one retiring `did` (for a handshake naming a retired DID), or undefined. */
export function chainFrom(chain: readonly RotationRecord[], did: string): readonly RotationRecord[] | undefined {
  const start = chain.findIndex((r) => r.old_did === did);
  return start < 0 ? undefined : chain.slice(start);
}
