/**
 * Offline verification of an audit file (docs/AUDIT.md): the hash chain line by line, every checkpoint's signature,
 * and every kept message's signature, naming the first line that fails. Web-standard: it reads bytes.
 */
import { decodeLowerHex, toHex } from './bytes.js';
import { ALGORITHMS, isAlgorithm, type Algorithm } from './crypto/algorithms.js';
import { sha3_256 } from './crypto/hash.js';
import { checkpointDigest } from './audit-chain.js';
import { MessageSigner } from './envelope.js';
import { handshakeRequestSigned } from './handshake.js';
import { AgentIdentity, PeerIdentity, isDid } from './identity.js';
import { JsonNumber, parseLossless, toPlain, type JsonObject, type JsonValue } from './json/lossless.js';
import { AUDIT_CHECKPOINT_CONTEXT, AUDIT_FORMAT_VERSION } from './protocol.js';

/** Why an audit file fails verification. */
export type AuditFailureReason =
  /** The file holds no line. */
  | 'empty'
  /** A line is not a strict JSON object of the format (or not UTF-8). */
  | 'malformed_line'
  /** The last line has no newline: a write was cut, or the file was truncated inside a line. */
  | 'torn_line'
  /** A line's `prev` is not the SHA3-256 of the line before it, or its `seq` is out of order. */
  | 'chain_broken'
  /** A checkpoint's signature does not verify under its segment's key. */
  | 'bad_checkpoint'
  /** A segment is signed by a key that is not one of the expected server keys. */
  | 'wrong_signer'
  /** A kept message does not verify, or does not match its entry. */
  | 'bad_message'
  /** The file does not end with a final checkpoint, and `requireClosed` was asked. */
  | 'not_closed';

/** The first failure found. `line` is 1-based. */
export interface AuditFailure {
  line: number;
  reason: AuditFailureReason;
  detail: string;
}

/** Options of `verifyAuditFile`. */
export interface VerifyAuditOptions {
  /**
   * The server keys the file must be signed with. Without them the file's own start lines name the key: that proves
   * the file is intact, not who wrote it.
   */
  serverKeys?: readonly (PeerIdentity | AgentIdentity)[];
  /** Client keys for kept messages whose handshake is not in the file (the file's handshakes name the others). */
  clientKeys?: readonly (PeerIdentity | AgentIdentity)[];
  /** Fail (`not_closed`) when the file does not end with a final checkpoint: a cut tail is then an error. */
  requireClosed?: boolean;
}

/** Outcome of `verifyAuditFile`. */
export interface AuditVerification {
  ok: boolean;
  /** The first failure; null when the file verifies. */
  failure: AuditFailure | null;
  lines: number;
  entries: number;
  checkpoints: number;
  segments: number;
  /** Kept messages whose signature verified. */
  messagesVerified: number;
  /** Kept messages that could not be checked: no key for their signer (give it in `clientKeys`). */
  messagesUnchecked: number;
  /** The line of the last checkpoint whose signature verified (null when none). */
  lastCheckpointLine: number | null;
  /** Lines after the last checkpoint: not covered by a signature, so they can be cut or rewritten undetected. */
  unsignedTail: number;
  /** Whether the last line is a final checkpoint (written at close). */
  closed: boolean;
  /** The DIDs that signed the segments. */
  signers: string[];
  /** What the caller should know though the file verifies (an unsigned tail, a file not closed, unchecked messages). */
  warnings: string[];
}

class Failure extends Error {
  constructor(
    readonly line: number,
    readonly reason: AuditFailureReason,
    detail: string,
  ) {
    super(detail);
  }
}

const HASH = /^[0-9a-f]{64}$/;
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The members of each line type, exactly (a member added or removed is a changed line). */
const START_KEYS = ['pqc_audit', 'type', 'seq', 'prev', 'timestamp', 'signer_did', 'algorithm', 'public_key', 'keep_messages'];
const ENTRY_KEYS = ['type', 'seq', 'prev', 'entry'];
const CHECKPOINT_KEYS = ['type', 'seq', 'prev', 'timestamp', 'entries', 'final', 'signature'];

function hasExactly(object: JsonObject, keys: readonly string[]): boolean {
  return object.size === keys.length && keys.every((key) => object.has(key));
}

function integer(value: JsonValue | undefined): number | undefined {
  if (!(value instanceof JsonNumber) || !/^(0|[1-9][0-9]*)$/.test(value.lexeme)) return undefined;
  const n = value.toNumber();
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Splits the file at `\n`; the part after the last newline (empty for a whole file) comes last. */
function splitLines(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      out.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  out.push(bytes.subarray(start));
  return out;
}

function parseLine(bytes: Uint8Array, n: number): JsonObject {
  let tree: JsonValue;
  try {
    tree = parseLossless(utf8Strict.decode(bytes));
  } catch (err) {
    throw new Failure(n, 'malformed_line', `not a JSON line (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!(tree instanceof Map)) throw new Failure(n, 'malformed_line', 'not a JSON object');
  return tree;
}

/** The `prev` of a line as written, read loosely (to tell which of two lines changed). */
function loosePrev(bytes: Uint8Array | undefined): string | undefined {
  if (bytes === undefined) return undefined;
  try {
    const tree = parseLossless(utf8Strict.decode(bytes));
    const prev = tree instanceof Map ? tree.get('prev') : undefined;
    return typeof prev === 'string' ? prev : undefined;
  } catch {
    return undefined;
  }
}

interface Segment {
  startLine: number;
  signer: PeerIdentity;
  seq: number;
  entries: number;
  keepMessages: boolean;
  finalAt: number | null;
}

/** The key of a start line, checked against the expected server keys. */
function segmentSigner(start: JsonObject, n: number, serverKeys: readonly PeerIdentity[]): PeerIdentity {
  const algorithm = start.get('algorithm');
  const publicKey = start.get('public_key');
  const did = start.get('signer_did');
  if (typeof algorithm !== 'string' || !isAlgorithm(algorithm)) throw new Failure(n, 'malformed_line', `algorithm is not one of ${ALGORITHMS.join(', ')}`);
  const keyBytes = decodeLowerHex(publicKey);
  if (keyBytes === undefined || !isDid(did)) throw new Failure(n, 'malformed_line', 'public_key or signer_did is malformed');
  let signer: PeerIdentity;
  try {
    signer = new PeerIdentity(algorithm as Algorithm, keyBytes);
  } catch (err) {
    throw new Failure(n, 'malformed_line', `public_key: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (signer.did !== did) throw new Failure(n, 'malformed_line', 'signer_did is not the DID of public_key');
  if (serverKeys.length > 0 && !serverKeys.some((key) => key.did === signer.did)) {
    throw new Failure(n, 'wrong_signer', `this segment is signed by ${signer.did}, not by the expected server key`);
  }
  return signer;
}

/** Checks a kept handshake request: its client signature, and that it is the request the entry describes. */
async function checkHandshakeMessage(entry: JsonObject, text: string, n: number, clients: Map<string, PeerIdentity>): Promise<void> {
  let fields: JsonValue;
  try {
    fields = parseLossless(text);
  } catch {
    throw new Failure(n, 'bad_message', 'the kept handshake request is not JSON');
  }
  if (!(fields instanceof Map) || fields.get('type') !== 'pqc_handshake_request') {
    throw new Failure(n, 'bad_message', 'the kept handshake request is not a pqc_handshake_request');
  }
  const algorithm = fields.get('algorithm');
  const key = decodeLowerHex(fields.get('client_public_key'));
  const signature = decodeLowerHex(fields.get('signature'));
  if (typeof algorithm !== 'string' || !isAlgorithm(algorithm) || key === undefined || signature === undefined) {
    throw new Failure(n, 'bad_message', 'the kept handshake request lacks its algorithm, key or signature');
  }
  let client: PeerIdentity;
  try {
    client = new PeerIdentity(algorithm as Algorithm, key);
  } catch {
    throw new Failure(n, 'bad_message', 'the kept handshake request carries a malformed key');
  }
  if (fields.get('client_did') !== client.did || entry.get('signer_did') !== client.did) {
    throw new Failure(n, 'bad_message', 'the kept handshake request is not signed by the entry\'s signer_did');
  }
  const profile = fields.get('v') === undefined ? 1 : 2;
  const { digest, context } = handshakeRequestSigned(fields, profile);
  if (!(await client.verifyingKey.verify(digest, signature, context))) {
    throw new Failure(n, 'bad_message', 'the kept handshake request\'s signature does not verify');
  }
  if (entry.get('digest') !== toHex(digest)) throw new Failure(n, 'bad_message', 'the entry\'s digest is not that of the kept handshake request');
  clients.set(client.did, client);
}

/**
 * Checks a kept message against its signer's key and its entry (signer, digest, session). Resolves false when no key
 * is known for the signer (unchecked).
 */
async function checkMessage(entry: JsonObject, text: string, n: number, signer: PeerIdentity, clients: Map<string, PeerIdentity>): Promise<boolean> {
  const did = entry.get('signer_did');
  if (typeof did !== 'string') throw new Failure(n, 'bad_message', 'an entry with a kept message names no signer_did');
  const peer = did === signer.did ? signer : clients.get(did);
  const result = await MessageSigner.verifyMessage(text, {
    peer,
    profiles: [2, 1],
    // A record is verified for what it says and who signed it, whenever that was.
    clockSkewSec: Number.POSITIVE_INFINITY,
  });
  if (!peer) {
    // No key: the envelope's own key (a v1 message carries it) proves integrity, not who signed.
    if (result.valid && result.signerDid === did) return false;
    if (result.reason === 'invalid_envelope' && /no peer given/.test(result.detail ?? '')) return false;
  }
  if (!result.valid) throw new Failure(n, 'bad_message', `the kept message does not verify (${result.reason}: ${result.detail})`);
  if (result.signerDid !== did) throw new Failure(n, 'bad_message', 'the kept message is signed by another DID than the entry names');
  if (entry.get('digest') !== result.digest) throw new Failure(n, 'bad_message', 'the entry\'s digest is not that of the kept message');
  const sessionId = entry.get('session_id');
  if (result.sessionId !== null && sessionId !== result.sessionId) {
    throw new Failure(n, 'bad_message', 'the kept message belongs to another session than the entry names');
  }
  return true;
}

/**
 * Verifies an audit file (docs/AUDIT.md) offline: every line's link to the line before, every checkpoint's signature
 * under its segment's key (pinned by `serverKeys` when given), every kept message's signature. Stops at the first
 * failure and names its line: for a single changed line, the changed one (a line whose bytes no longer hash to the
 * next line's `prev` is named, not its successor).
 */
export async function verifyAuditFile(bytes: Uint8Array, options: VerifyAuditOptions = {}): Promise<AuditVerification> {
  const serverKeys = (options.serverKeys ?? []).map((key) => (key instanceof AgentIdentity ? key.toPeer() : key));
  const clients = new Map<string, PeerIdentity>();
  for (const key of options.clientKeys ?? []) {
    const peer = key instanceof AgentIdentity ? key.toPeer() : key;
    clients.set(peer.did, peer);
  }
  const result: AuditVerification = {
    ok: false,
    failure: null,
    lines: 0,
    entries: 0,
    checkpoints: 0,
    segments: 0,
    messagesVerified: 0,
    messagesUnchecked: 0,
    lastCheckpointLine: null,
    unsignedTail: 0,
    closed: false,
    signers: [],
    warnings: [],
  };
  const raw = splitLines(bytes);
  const tail = raw.pop()!;
  const lines = raw;
  result.lines = lines.length + (tail.length > 0 ? 1 : 0);
  const hashes = lines.map((line) => toHex(sha3_256(line)));
  let segment: Segment | undefined;

  /** Whether the checkpoint at line `n` (1-based) verifies under `signer`, read loosely. */
  const checkpointVerifies = async (n: number, signer: PeerIdentity): Promise<boolean> => {
    try {
      const tree = parseLossless(utf8Strict.decode(lines[n - 1]!));
      const signature = tree instanceof Map ? decodeLowerHex(tree.get('signature')) : undefined;
      if (!(tree instanceof Map) || tree.get('type') !== 'checkpoint' || signature === undefined) return false;
      return await signer.verifyingKey.verify(checkpointDigest(tree), signature, AUDIT_CHECKPOINT_CONTEXT);
    } catch {
      return false;
    }
  };

  /** The line to blame when line `n`'s prev is not the hash of line n-1: n-1 if line n itself is intact. */
  const blame = async (n: number): Promise<number> => {
    if (n < lines.length) return loosePrev(lines[n]) === hashes[n - 1] ? n - 1 : n;
    if (segment && (await checkpointVerifies(n, segment.signer))) return n - 1;
    return n;
  };
  const broken = async (n: number): Promise<Failure> => {
    const line = await blame(n);
    return new Failure(
      line,
      'chain_broken',
      `line ${n}'s prev is not the SHA3-256 of line ${n - 1}: line ${line} was changed, or lines were removed or inserted between them`,
    );
  };

  try {
    if (lines.length === 0 && tail.length === 0) throw new Failure(1, 'empty', 'the file holds no line');
    for (let i = 0; i < lines.length; i++) {
      const n = i + 1;
      const line = parseLine(lines[i]!, n);
      const type = line.get('type');
      const prev = line.get('prev');
      const seq = integer(line.get('seq'));
      if (type === 'start') {
        if (!hasExactly(line, START_KEYS) || integer(line.get('pqc_audit')) !== AUDIT_FORMAT_VERSION || seq !== 0) {
          throw new Failure(n, 'malformed_line', `not a start line of format ${AUDIT_FORMAT_VERSION}`);
        }
        if (typeof line.get('keep_messages') !== 'boolean' || typeof line.get('timestamp') !== 'string') {
          throw new Failure(n, 'malformed_line', 'keep_messages or timestamp is malformed');
        }
        if (n === 1) {
          if (prev !== null) throw new Failure(n, 'chain_broken', 'the first line links to a line before it: the file does not begin at its first line');
        } else if (prev !== hashes[i - 1]) {
          throw await broken(n);
        }
        if (segment && segment.finalAt === null) result.warnings.push(`the segment of line ${segment.startLine} was not closed (no final checkpoint before line ${n})`);
        const signer = segmentSigner(line, n, serverKeys);
        segment = { startLine: n, signer, seq: 0, entries: 0, keepMessages: line.get('keep_messages') === true, finalAt: null };
        result.segments++;
        if (!result.signers.includes(signer.did)) result.signers.push(signer.did);
        continue;
      }
      if (n === 1 || segment === undefined) throw new Failure(n, 'chain_broken', 'the file does not begin with a start line: earlier lines are missing');
      if (typeof prev !== 'string' || !HASH.test(prev)) throw new Failure(n, 'malformed_line', 'prev is not a hex SHA3-256');
      if (prev !== hashes[i - 1]) throw await broken(n);
      if (segment.finalAt !== null) throw new Failure(n, 'chain_broken', `line ${n} follows the final checkpoint of line ${segment.finalAt}`);
      if (seq !== segment.seq + 1) throw new Failure(n, 'chain_broken', `seq ${String(seq)} does not follow ${segment.seq}`);
      segment.seq = seq;
      if (type === 'entry') {
        const entry = line.get('entry');
        if (!hasExactly(line, ENTRY_KEYS) || !(entry instanceof Map)) throw new Failure(n, 'malformed_line', 'not an entry line');
        segment.entries++;
        result.entries++;
        const message = entry.get('message');
        if (message !== undefined) {
          if (typeof message !== 'string') throw new Failure(n, 'malformed_line', 'message is not a string');
          if (entry.get('verified') !== true) throw new Failure(n, 'bad_message', 'a kept message on an entry that is not verified');
          if (entry.get('operation') === 'handshake') {
            await checkHandshakeMessage(entry, message, n, clients);
            result.messagesVerified++;
          } else if (await checkMessage(entry, message, n, segment.signer, clients)) {
            result.messagesVerified++;
          } else {
            result.messagesUnchecked++;
          }
        }
        continue;
      }
      if (type === 'checkpoint') {
        const signature = decodeLowerHex(line.get('signature'));
        if (!hasExactly(line, CHECKPOINT_KEYS) || signature === undefined || typeof line.get('final') !== 'boolean' || typeof line.get('timestamp') !== 'string') {
          throw new Failure(n, 'malformed_line', 'not a checkpoint line');
        }
        if (integer(line.get('entries')) !== segment.entries) {
          throw new Failure(n, 'bad_checkpoint', `the checkpoint counts ${String(toPlain(line.get('entries')!))} entries, the segment holds ${segment.entries}`);
        }
        if (!(await segment.signer.verifyingKey.verify(checkpointDigest(line), signature, AUDIT_CHECKPOINT_CONTEXT))) {
          throw new Failure(n, 'bad_checkpoint', `the checkpoint's signature does not verify under ${segment.signer.did}`);
        }
        result.checkpoints++;
        result.lastCheckpointLine = n;
        if (line.get('final') === true) segment.finalAt = n;
        continue;
      }
      throw new Failure(n, 'malformed_line', `unknown line type ${JSON.stringify(toPlain(type ?? null))}`);
    }
    if (tail.length > 0) {
      throw new Failure(lines.length + 1, 'torn_line', `the last line has no newline: a write was cut, or the file was truncated inside line ${lines.length + 1}`);
    }
    result.unsignedTail = lines.length - (result.lastCheckpointLine ?? 0);
    result.closed = segment?.finalAt === lines.length;
    if (!result.closed) {
      const last = result.lastCheckpointLine;
      const what = last === null ? 'no line is signed' : `the last checkpoint is line ${last}`;
      result.warnings.push(
        `the file does not end with a final checkpoint (${what}; ${result.unsignedTail} line(s) after it are not signed): ` +
          'the writer is still running, stopped without closing, or the tail was truncated',
      );
      if (options.requireClosed) throw new Failure(lines.length, 'not_closed', `no final checkpoint: ${what}, ${result.unsignedTail} unsigned line(s) after it (truncated, or not closed)`);
    }
    if (result.messagesUnchecked > 0) {
      result.warnings.push(`${result.messagesUnchecked} kept message(s) not checked: no key for their signer (its handshake is not in this file)`);
    }
    result.ok = true;
  } catch (err) {
    if (!(err instanceof Failure)) throw err;
    result.failure = { line: err.line, reason: err.reason, detail: err.message };
  }
  return result;
}
