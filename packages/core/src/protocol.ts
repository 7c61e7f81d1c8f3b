/**
 * The protocol's facts (docs/PROTOCOL.md), each written once: header names, signing contexts, paths and the defaults
 * of every limit. Servers, clients, adapters, the CLI and the stores read them from here.
 */
import { utf8 } from './bytes.js';

/** The top-level member that carries the envelope (§3). */
export const ENVELOPE_KEY = '_pqc';

/** The header naming a POST's session (§3). */
export const PQC_SESSION_HEADER = 'PQC-Session';
/** The header carrying a GET's or DELETE's envelope (§4). */
export const PQC_ENVELOPE_HEADER = 'PQC-Envelope';
/** The MCP session header (Streamable HTTP, legacy era). */
export const MCP_SESSION_HEADER = 'Mcp-Session-Id';
/** The SSE resumption header, refused by this protocol (§4). */
export const LAST_EVENT_ID_HEADER = 'Last-Event-ID';

/**
 * Most bytes of a handshake request a server reads (§5): the largest (ML-DSA-87, v1 or v2) is under 16 KiB, so 64 KiB
 * leaves room for extension members while an unauthenticated client cannot make the server buffer megabytes.
 */
export const MAX_HANDSHAKE_BODY_BYTES = 64 * 1024;
/** Most JSON values in a handshake request or response (§5; a response with a full rotation chain has about 220). */
export const MAX_HANDSHAKE_JSON_VALUES = 1024;

/** ML-DSA context of v2 message signatures (§3). */
export const MESSAGE_CONTEXT: Uint8Array = utf8('pqc-mcp/v2/message');
/** ML-DSA context of the client's handshake signature (§5). */
export const HANDSHAKE_REQUEST_CONTEXT: Uint8Array = utf8('pqc-mcp/v2/handshake-request');
/** ML-DSA context of the server's handshake signature (§5). */
export const HANDSHAKE_RESPONSE_CONTEXT: Uint8Array = utf8('pqc-mcp/v2/handshake-response');
/** ML-DSA context of a key rotation record, signed by the key it retires (§11, a repository extension). */
export const ROTATION_CONTEXT: Uint8Array = utf8('pqc-mcp/v2/key-rotation');
/** The `type` of a key rotation record (§11). */
export const ROTATION_RECORD_TYPE = 'pqc_key_rotation';
/** Most records in one rotation chain a client reads (§11). */
export const MAX_ROTATION_CHAIN = 16;
/** Default overlap of a rotation: how long the retired key stays a valid start of the chain, seconds (7 days). */
export const DEFAULT_ROTATION_OVERLAP_SEC = 7 * 24 * 3600;
/**
 * ML-DSA context of an audit checkpoint's signature (docs/AUDIT.md): distinct from every message and handshake
 * context, so that a checkpoint signature is never accepted as a message signature, nor the other way round.
 */
export const AUDIT_CHECKPOINT_CONTEXT: Uint8Array = utf8('pqc-mcp/audit/v1/checkpoint');
/** The version of the audit file format (docs/AUDIT.md), in each segment's start line (`pqc_audit`). */
export const AUDIT_FORMAT_VERSION = 1;
/** The empty context the v1 profile signs with (§7). */
export const EMPTY_CONTEXT: Uint8Array = new Uint8Array(0);

/** JSON-RPC error code of every rejection by the PQC layer (§6). */
export const PQC_ERROR_CODE = -32010;

/** Default allowed clock skew, seconds (§3). */
export const DEFAULT_CLOCK_SKEW_SEC = 300;
/** Default session lifetime, seconds (§5). */
export const DEFAULT_SESSION_TTL_SEC = 3600;
/** Default bound on live sessions in one store (§9). */
export const DEFAULT_MAX_SESSIONS = 10_000;
/** Default bound on live sessions per client key (§9): one more ends that client's oldest. */
export const DEFAULT_MAX_SESSIONS_PER_CLIENT = 16;
/** Default bound on messages per batch (§9). */
export const DEFAULT_MAX_BATCH = 50;
/** Default bound on a request body, and on a JSON answer or an SSE event a client reads: 4 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Default bound on the JSON values (objects, arrays, strings, numbers, literals) of one body or event. */
export const DEFAULT_MAX_JSON_VALUES = 100_000;
/** Default bound on nonces remembered per session within the acceptance window. */
export const DEFAULT_MAX_NONCES_PER_SESSION = 10_000;

/**
 * How long nonces (and the record of an ended or expired session) are kept after they can last be accepted:
 * twice the clock skew plus 60 s (§3 step 7, §6).
 */
export function nonceRetentionSec(clockSkewSec: number = DEFAULT_CLOCK_SKEW_SEC): number {
  return 2 * clockSkewSec + 60;
}

/** The handshake path beside an MCP endpoint path: `new URL('pqc/handshake', endpoint)` (§5). */
export function handshakePathFor(endpointPath: string): string {
  return new URL('pqc/handshake', new URL(endpointPath, 'http://localhost')).pathname;
}

/** The v1 profile's handshake path beside an MCP endpoint path (`<base>/handshake`, §7). */
export function legacyHandshakePathFor(endpointPath: string): string {
  return new URL('handshake', new URL(endpointPath, 'http://localhost')).pathname;
}
