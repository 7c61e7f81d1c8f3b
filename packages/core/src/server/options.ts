/** The server layer's options, validated eagerly and resolved once: every adapter takes the same ones. */
import { AuditLog, type AuditSink } from '../audit.js';
import { resolveTelemetry, type PQCTelemetry, type ServerTelemetry } from '../telemetry.js';
import { ALGORITHMS, isAlgorithm, type Algorithm } from '../crypto/algorithms.js';
import type { BackendPreference } from '../crypto/select.js';
import type { PQCReason } from '../errors.js';
import type { Authorizer } from '../handshake.js';
import { AgentIdentity } from '../identity.js';
import {
  DEFAULT_CLOCK_SKEW_SEC,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_JSON_VALUES,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_MAX_SESSIONS_PER_CLIENT,
  DEFAULT_SESSION_TTL_SEC,
  handshakePathFor,
  legacyHandshakePathFor,
  nonceRetentionSec,
} from '../protocol.js';
import { readRotationRecords, type RotationRecord } from '../rotation.js';
import { MemorySessionStore } from '../store/memory.js';
import { SESSION_STORE_METHODS, type Profile, type SessionStore } from '../store/types.js';
import { TrustStore } from '../trust/store.js';

/** What became of one request in the PQC layer, handed to `onResult` when core's answer is ready. */
export interface PQCRequestResult {
  /**
   * `message` (a verified POST), `stream` (a verified GET), `end-mcp-session` (a verified DELETE of the endpoint),
   * `handshake`, `end-session` (a DELETE of the handshake path), `info` (GET of the handshake path), `rejected`,
   * `passed` (not the PQC layer's: another path, or a CORS preflight) or `refused` (a method the endpoint does not take).
   */
  kind: 'message' | 'stream' | 'end-mcp-session' | 'handshake' | 'end-session' | 'info' | 'rejected' | 'passed' | 'refused';
  /** The HTTP status of core's answer. */
  status: number;
  reason: PQCReason | null;
  /** A human-readable detail of a rejection. */
  detail: string | null;
  /** The client, once its signature verified. */
  peerDid: string | null;
  sessionId: string | null;
  /** The JSON-RPC methods of the verified messages. */
  methods: string[];
  /** Messages core has signed in the answer so far (grows while a stream is sent). */
  signed: number;
}

/** Options of the PQC server layer (`createPQCHandler`); every adapter takes the same ones. */
export interface PQCServerOptions {
  /** The server's identity (required). */
  identity: AgentIdentity;
  /**
   * Path(s) of the protected MCP endpoint (default `/mcp`). A request is the endpoint's when its path, in the loose form
   * frameworks route on (decoded, any case, without trailing slashes), is the endpoint path or ends with it: mounted
   * under a prefix (an Express router, Hono's `basePath`), the endpoint is protected all the same.
   */
  endpoint?: string | readonly string[];
  /** Path of the handshake (default: `pqc/handshake` beside the first endpoint, §5). */
  handshakePath?: string;
  /**
   * The endpoint's path as clients address it, when a proxy in front rewrites paths (§3 step 8): the `http.path` a
   * client signs is checked against it (and the query received) instead of the path received.
   */
  publicPath?: string;
  /** Accepted profiles (default `[2]`; `[2, 1]` also accepts v1 (`pqc-mcp-transport`) peers, §7: weaker). */
  profiles?: readonly Profile[];
  /** Accepted client algorithms (default: ML-DSA-44, -65 and -87). */
  algorithms?: readonly Algorithm[];
  /** Allowed clock skew in seconds (default 300). */
  clockSkewSec?: number;
  /** Session lifetime in seconds (default 3600). */
  sessionTtlSec?: number;
  /** Live sessions in all (default 10 000): a handshake past it ends the least recently used session. */
  maxSessions?: number;
  /** Live sessions per client key (default 16): a handshake past it ends that client's oldest. */
  maxSessionsPerClient?: number;
  /** Messages per batch (default 50); more is `invalid_envelope`. */
  maxBatch?: number;
  /** Bound on a request body in bytes (default 4 MiB); past it requests get 413 `body_too_large`. */
  maxBodyBytes?: number;
  /** Bound on the JSON values of a request body (default 100 000); past it requests get 413 `body_too_large`. */
  maxJsonValues?: number;
  /**
   * Who may open a session (default: anyone): a list of client DIDs, a function of the authenticated peer, or a
   * `TrustStore` (a file or URL of trusted keys, with revocation): then a client whose trust is withdrawn is refused
   * at its next message too, and its live sessions are ended in the session store, for every instance sharing it.
   */
  authorize?: Authorizer | TrustStore;
  /**
   * This server's key rotation records (§11), oldest first, the last one rotating to `identity`: a list of records,
   * or their JSON text (`pqc-mcp rotate` writes one). Checked at start-up (shape, links, every signature). They are
   * served with the identity at `GET pqc/handshake`, and a handshake naming a retired DID within its key's overlap is
   * answered with the current key and the chain from that DID, which rotation-aware clients follow.
   */
  rotations?: string | readonly (RotationRecord | string)[];
  /**
   * Where sessions and nonces live (default: a `MemorySessionStore` on the clock `now`, for one instance; §9: one store
   * per identity). A store given keeps its own clock.
   */
  store?: SessionStore;
  /** The audit trail: an `AuditLog`, or a sink function that receives every entry. */
  audit?: AuditLog | AuditSink;
  /** Put the server's public key in every signed message (default false: the client pinned it). */
  includePublicKey?: boolean;
  /**
   * The ML-DSA backend the server signs and verifies with (default: the identity's own), e.g. a worker pool
   * (`createWorkerPoolBackend()` of `@pqc-mcp/core/node`) to keep the crypto off the event loop.
   */
  backend?: BackendPreference;
  /** Told what became of each request (for logs and metrics). Errors it throws are ignored. */
  onResult?: (result: PQCRequestResult, request: Request) => void;
  /**
   * OpenTelemetry: a tracer and/or a meter of `@opentelemetry/api` (an optional peer dependency; nothing is imported
   * from it). Spans and metrics for handshakes, verifications and signing (README, "Telemetry"). Unset (default):
   * no telemetry call is made.
   */
  telemetry?: PQCTelemetry;
  /** The server's clock, epoch ms (default `Date.now`): for tests and replays of recorded exchanges. */
  now?: () => number;
}

/** The options as the handler uses them: every default applied, every path resolved. */
export interface ResolvedServerOptions {
  readonly identity: AgentIdentity;
  readonly endpoints: readonly string[];
  readonly handshakePath: string;
  /** The v1 profile's `<base>/handshake`: answered `unsupported_version` while v1 is off. */
  readonly legacyHandshakePath: string;
  readonly publicPath: string | undefined;
  readonly profiles: readonly Profile[];
  readonly algorithms: readonly Algorithm[];
  readonly clockSkewSec: number;
  readonly sessionTtlSec: number;
  /** How long nonces and ended records are kept (§6): twice the skew plus 60 s. */
  readonly retentionSec: number;
  readonly maxSessions: number;
  readonly maxSessionsPerClient: number;
  readonly maxBatch: number;
  readonly maxBodyBytes: number;
  readonly maxJsonValues: number;
  readonly authorize: Authorizer | undefined;
  /** The trust store given as `authorize`: every message's client is checked against it. */
  readonly trust: TrustStore | undefined;
  /** The rotation records, checked (§11); undefined when none. */
  readonly rotations: readonly RotationRecord[] | undefined;
  readonly store: SessionStore;
  readonly audit: AuditLog;
  readonly includePublicKey: boolean;
  readonly onResult: ((result: PQCRequestResult, request: Request) => void) | undefined;
  /** The server's telemetry; undefined when the option is unset. */
  readonly telemetry: ServerTelemetry | undefined;
  readonly now: () => number;
}

function optionError(name: string, rule: string): TypeError {
  return new TypeError(`pqc: option "${name}" ${rule}`);
}

function positive(options: PQCServerOptions, name: keyof PQCServerOptions, fallback: number, integer: boolean): number {
  const value = options[name] ?? fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw optionError(name, `must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return value;
}

function checkPath(path: unknown, name: string): string {
  if (typeof path !== 'string' || !path.startsWith('/') || /[?#\s]/.test(path)) {
    throw optionError(name, `must be a path starting with "/" (no query, fragment or spaces), got ${JSON.stringify(path)}`);
  }
  return path;
}

function resolveAudit(audit: PQCServerOptions['audit']): AuditLog {
  if (audit === undefined) return new AuditLog();
  if (audit instanceof AuditLog) return audit;
  if (typeof audit === 'function') return new AuditLog({ sink: audit });
  throw optionError('audit', 'must be an AuditLog or a function (entry) => void');
}

/** The given store, or a `MemorySessionStore` on the server's own clock (a store given keeps its own). */
function resolveStore(store: unknown, now: () => number): SessionStore {
  if (store === undefined) return new MemorySessionStore({ now });
  for (const method of SESSION_STORE_METHODS) {
    if (typeof (store as Record<string, unknown> | null)?.[method] !== 'function') {
      throw optionError('store', `must implement SessionStore (missing ${method})`);
    }
  }
  return store as SessionStore;
}

/** Validates options eagerly, so that a misconfiguration fails at start-up with a message naming the option. */
export function resolveServerOptions(options: PQCServerOptions): ResolvedServerOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('pqc: options are required ({ identity })');
  if (!(options.identity instanceof AgentIdentity)) {
    throw optionError('identity', 'must be an AgentIdentity (AgentIdentity.create(), .fromSeed() or .load(file))');
  }
  const endpoints = (typeof options.endpoint === 'string' ? [options.endpoint] : (options.endpoint ?? ['/mcp'])).map((p) => checkPath(p, 'endpoint'));
  if (endpoints.length === 0) throw optionError('endpoint', 'must name at least one path');
  const profiles = [...(options.profiles ?? [2])];
  if (profiles.length === 0 || profiles.some((p) => p !== 1 && p !== 2)) throw optionError('profiles', 'must be a non-empty list of 1 and 2');
  const algorithms = [...(options.algorithms ?? ALGORITHMS)];
  if (algorithms.length === 0 || !algorithms.every(isAlgorithm)) throw optionError('algorithms', `must be a non-empty list of ${ALGORITHMS.join(', ')}`);
  const trust = options.authorize instanceof TrustStore ? options.authorize : undefined;
  const authorize: Authorizer | undefined = trust ? (peer) => trust.authorize(peer) : (options.authorize as Authorizer | undefined);
  if (authorize !== undefined && typeof authorize !== 'function' && !(Array.isArray(authorize) && authorize.every((d) => typeof d === 'string'))) {
    throw optionError('authorize', 'must be a list of DIDs, a function (peer) => boolean or a TrustStore');
  }
  if (options.onResult !== undefined && typeof options.onResult !== 'function') throw optionError('onResult', 'must be a function');
  if (options.now !== undefined && typeof options.now !== 'function') throw optionError('now', 'must be a function returning epoch milliseconds');
  const now = options.now ?? Date.now;
  let telemetry: ServerTelemetry | undefined;
  try {
    telemetry = resolveTelemetry(options.telemetry);
  } catch (err) {
    throw optionError('telemetry', `must be { tracer?, meter? } of @opentelemetry/api (${err instanceof Error ? err.message : String(err)})`);
  }
  let identity = options.identity;
  if (options.backend !== undefined) {
    try {
      identity = identity.withBackend(options.backend);
    } catch (err) {
      throw optionError('backend', `must be 'auto', 'noble', 'node', 'webcrypto' or a CryptoBackend available here (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  const store = resolveStore(options.store, now);
  if (trust && typeof store.endPeerSessions !== 'function') {
    throw optionError('store', 'must implement endPeerSessions when authorize is a TrustStore (a withdrawn client\'s sessions must end in it)');
  }
  const clockSkewSec = positive(options, 'clockSkewSec', DEFAULT_CLOCK_SKEW_SEC, false);
  const publicPath = options.publicPath === undefined ? undefined : checkPath(options.publicPath, 'publicPath');
  let rotations: readonly RotationRecord[] | undefined;
  if (options.rotations !== undefined) {
    try {
      const input = Array.isArray(options.rotations)
        ? (options.rotations as readonly unknown[]).map((r) => (typeof r === 'string' ? (JSON.parse(r) as unknown) : r))
        : options.rotations;
      rotations = Object.freeze(readRotationRecords(input, identity));
    } catch (err) {
      throw optionError('rotations', `must be this server's rotation chain: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return Object.freeze({
    identity,
    endpoints: Object.freeze(endpoints),
    handshakePath: checkPath(options.handshakePath ?? handshakePathFor(endpoints[0]!), 'handshakePath'),
    legacyHandshakePath: legacyHandshakePathFor(endpoints[0]!),
    publicPath,
    profiles: Object.freeze(profiles),
    algorithms: Object.freeze(algorithms),
    clockSkewSec,
    sessionTtlSec: positive(options, 'sessionTtlSec', DEFAULT_SESSION_TTL_SEC, false),
    retentionSec: nonceRetentionSec(clockSkewSec),
    maxSessions: positive(options, 'maxSessions', DEFAULT_MAX_SESSIONS, true),
    maxSessionsPerClient: positive(options, 'maxSessionsPerClient', DEFAULT_MAX_SESSIONS_PER_CLIENT, true),
    maxBatch: positive(options, 'maxBatch', DEFAULT_MAX_BATCH, true),
    maxBodyBytes: positive(options, 'maxBodyBytes', DEFAULT_MAX_BODY_BYTES, true),
    maxJsonValues: positive(options, 'maxJsonValues', DEFAULT_MAX_JSON_VALUES, true),
    authorize,
    trust,
    rotations,
    store,
    audit: resolveAudit(options.audit),
    includePublicKey: options.includePublicKey === true,
    onResult: options.onResult,
    telemetry,
    now,
  });
}
