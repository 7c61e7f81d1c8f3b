/** The options of `pqcFetch`, validated eagerly and resolved once. */
import { AuditLog, type AuditSink } from '../audit.js';
import { ALGORITHMS, isAlgorithm, type Algorithm } from '../crypto/algorithms.js';
import { AgentIdentity, PeerIdentity, isDid } from '../identity.js';
import type { RotationChain } from '../rotation.js';
import { DEFAULT_CLOCK_SKEW_SEC, DEFAULT_MAX_BODY_BYTES } from '../protocol.js';
import type { Profile } from '../store/types.js';

/** The `fetch` signature the MCP SDKs accept. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Default bound on the JSON values of one answer or event a client reads (answers can be larger than requests). */
export const DEFAULT_CLIENT_MAX_JSON_VALUES = 1_000_000;

/** Options of `pqcFetch`. */
export interface PQCFetchOptions {
  /** The client's identity (required). */
  identity: AgentIdentity;
  /** The server's DID: the handshake fails with `peer_mismatch` for any other server. */
  serverDid?: string;
  /** The server's public key (hex or bytes), an alternative to `serverDid`. */
  serverPublicKey?: string | Uint8Array;
  /** Accept whichever server answers the first handshake (`GET pqc/handshake` names it), and pin it (default false). */
  trustOnFirstUse?: boolean;
  /**
   * Follow the server's key rotation (§11, default true): when a handshake naming the pinned DID is answered by another
   * key with a chain of rotation records that leads there from the pinned key (each record signed by the key before
   * it), the client re-pins the new key, once that key has signed the handshake, and calls `onRotation`. Any other
   * chain is refused (`RotationError`, `reason` `peer_mismatch`, `rotationReason` says why). `false`: a handshake
   * answered by another key is `peer_mismatch`, as in revision 2.
   */
  followRotations?: boolean;
  /** Told when the client followed a rotation and re-pinned (persist `chain.did` as the new pin). Errors it throws are ignored. */
  onRotation?: (chain: RotationChain) => void;
  /** DIDs this client retired before (from earlier `onRotation` calls): a rotation back to one of them is refused. */
  retiredDids?: readonly string[];
  /** Handshake URL (default: `pqc/handshake` beside the request URL, §5; `handshake` beside it for profile 1). */
  handshakeUrl?: string | URL;
  /** 2 (default) or 1 (the v1 format of `pqc-mcp-transport` peers, §7: weaker). */
  profile?: Profile;
  /** Accepted server algorithms (default: all three). */
  algorithms?: readonly Algorithm[];
  /** Allowed clock skew, seconds (default 300). */
  clockSkewSec?: number;
  /** Bound on a JSON answer and on each SSE event, bytes (default 4 MiB). */
  maxResponseBytes?: number;
  /** Bound on the JSON values of an answer or event (default 1 000 000). */
  maxJsonValues?: number;
  /** The fetch underneath (default `globalThis.fetch`). */
  fetch?: FetchLike;
  /** The client's audit trail: an `AuditLog`, or a sink function. */
  audit?: AuditLog | AuditSink;
  /** The client's clock, epoch ms (default `Date.now`): for tests and replays of recorded exchanges. */
  now?: () => number;
}

/** The options as the client uses them. */
export interface ResolvedFetchOptions {
  readonly identity: AgentIdentity;
  /** The DID pinned at creation (or derived from a pinned key); undefined until first use with `trustOnFirstUse`. */
  readonly serverDid: string | undefined;
  readonly serverPublicKey: string | undefined;
  readonly followRotations: boolean;
  readonly onRotation: ((chain: RotationChain) => void) | undefined;
  readonly retiredDids: readonly string[];
  readonly handshakeUrl: URL | undefined;
  readonly profile: Profile;
  readonly algorithms: readonly Algorithm[];
  readonly clockSkewSec: number;
  readonly maxResponseBytes: number;
  readonly maxJsonValues: number;
  readonly fetch: FetchLike;
  readonly audit: AuditLog;
  readonly now: () => number;
}

function optionError(name: string, rule: string): TypeError {
  return new TypeError(`pqcFetch: option "${name}" ${rule}`);
}

function positive(value: unknown, name: string, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) throw optionError(name, `must be a positive number, got ${String(v)}`);
  return v;
}

/** Validates the options (a `TypeError` names a bad one). */
export function resolveFetchOptions(options: PQCFetchOptions): ResolvedFetchOptions {
  if (typeof options !== 'object' || options === null || !(options.identity instanceof AgentIdentity)) {
    throw optionError('identity', 'must be an AgentIdentity');
  }
  if (options.serverDid === undefined && options.serverPublicKey === undefined && options.trustOnFirstUse !== true) {
    throw new TypeError(
      'pqcFetch: pin the server with "serverDid" or "serverPublicKey" (GET <base>/pqc/handshake tells them), ' +
        'or accept the first server that answers with "trustOnFirstUse: true"',
    );
  }
  if (options.serverDid !== undefined && !isDid(options.serverDid)) throw optionError('serverDid', 'must be a did:pqaid DID');
  const profile = options.profile ?? 2;
  if (profile !== 1 && profile !== 2) throw optionError('profile', 'must be 1 or 2');
  const algorithms = [...(options.algorithms ?? ALGORITHMS)];
  if (algorithms.length === 0 || !algorithms.every(isAlgorithm)) throw optionError('algorithms', `must be a non-empty list of ${ALGORITHMS.join(', ')}`);
  let serverPublicKey: string | undefined;
  let serverDid = options.serverDid;
  if (options.serverPublicKey !== undefined) {
    let key: PeerIdentity | undefined;
    for (const algorithm of ALGORITHMS) {
      try {
        key = new PeerIdentity(algorithm, options.serverPublicKey);
        break;
      } catch {
        // another algorithm's key length
      }
    }
    if (!key) throw optionError('serverPublicKey', 'must be an ML-DSA public key (hex or bytes)');
    if (serverDid !== undefined && serverDid !== key.did) throw optionError('serverDid', 'is not the DID of serverPublicKey');
    serverPublicKey = key.publicKeyHex;
    serverDid = key.did;
  }
  let handshakeUrl: URL | undefined;
  if (options.handshakeUrl !== undefined) {
    try {
      handshakeUrl = new URL(String(options.handshakeUrl));
    } catch {
      throw optionError('handshakeUrl', `must be an absolute URL, got ${String(options.handshakeUrl)}`);
    }
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw optionError('fetch', 'must be a function');
  if (options.now !== undefined && typeof options.now !== 'function') throw optionError('now', 'must be a function returning epoch milliseconds');
  if (options.followRotations !== undefined && typeof options.followRotations !== 'boolean') throw optionError('followRotations', 'must be a boolean');
  if (options.onRotation !== undefined && typeof options.onRotation !== 'function') throw optionError('onRotation', 'must be a function');
  const retiredDids = [...(options.retiredDids ?? [])];
  if (!retiredDids.every(isDid)) throw optionError('retiredDids', 'must be a list of did:pqaid DIDs');
  if (serverDid !== undefined && retiredDids.includes(serverDid)) throw optionError('retiredDids', 'holds the pinned server DID');
  const inner = options.fetch;
  return {
    identity: options.identity,
    serverDid,
    serverPublicKey,
    followRotations: options.followRotations ?? true,
    onRotation: options.onRotation,
    retiredDids,
    handshakeUrl,
    profile,
    algorithms,
    clockSkewSec: positive(options.clockSkewSec, 'clockSkewSec', DEFAULT_CLOCK_SKEW_SEC),
    maxResponseBytes: positive(options.maxResponseBytes, 'maxResponseBytes', DEFAULT_MAX_BODY_BYTES),
    maxJsonValues: positive(options.maxJsonValues, 'maxJsonValues', DEFAULT_CLIENT_MAX_JSON_VALUES),
    fetch: inner ?? ((input, init) => globalThis.fetch(input, init)),
    audit: options.audit instanceof AuditLog ? options.audit : new AuditLog(typeof options.audit === 'function' ? { sink: options.audit } : {}),
    now: options.now ?? Date.now,
  };
}
