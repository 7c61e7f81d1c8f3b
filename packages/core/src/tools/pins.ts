/**
 * Tool pinning against silent changes ("rug pulls"): the digest of an MCP tool definition, the record a client keeps
 * of the tools it approved per server DID, the store interface, and the typed error. Web-standard (no `node:`); the
 * file store is `FileToolPinStore` of `@pqc-mcp/core/node`. The MCP-level logic (listing, diffing, refusing calls)
 * is `@pqc-mcp/mcp`'s; this module holds what every store and client must agree on.
 */
import { sha3_256Hex } from '../crypto/hash.js';
import { isDid } from '../identity.js';
import { canonicalJson } from '../json/canonical.js';

/** The fields of an MCP tool that are pinned: what a model or a user is shown, and what the arguments must be. */
export const PINNED_TOOL_FIELDS = ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;

/** A tool definition as pinned: `name` and, when present, `title`, `description`, `inputSchema`, `outputSchema`, `annotations`. */
export interface ToolDefinition {
  name: string;
  title?: string;
  description?: string;
  inputSchema?: unknown;
  outputSchema?: unknown;
  annotations?: unknown;
}

/** One approved version of a tool: its definition, digest, the DID whose signed `tools/list` answer carried it, when. */
export interface ToolPin {
  /** The tool name, exactly as listed (code points compared, no normalization). */
  name: string;
  /** Lowercase hex SHA3-256 of the canonical JSON (PROTOCOL.md §2) of `definition`. */
  digest: string;
  definition: ToolDefinition;
  /** The DID that signed the `tools/list` answer this version came in (the server's, verified by the PQC layer). */
  signer: string;
  /** When it was pinned or approved (ms since the epoch). */
  pinnedAt: number;
}

/**
 * Where a client keeps its approved tools, per server DID. `get` resolves `undefined` for a server never seen;
 * `set` replaces that server's pins. A store that cannot read its data must throw (a `ToolPinError` with reason
 * `pin_store_corrupt`), never answer `undefined`: that would re-trust a changed server on first use.
 */
export interface ToolPinStore {
  get(serverDid: string): Promise<readonly ToolPin[] | undefined>;
  set(serverDid: string, pins: readonly ToolPin[]): Promise<void>;
}

/** Machine-readable reasons of `ToolPinError`. */
export type ToolPinReason =
  /** The tool's definition differs from the approved one: approve it first. */
  | 'tool_changed'
  /** The tool is new (not approved yet). */
  | 'tool_added'
  /** The server's current `tools/list` does not name the tool (removed, hidden, or never there). */
  | 'tool_not_listed'
  /** The `tools/list` answer cannot be trusted as a whole (duplicate names, endless or looping pagination, too many tools). */
  | 'tools_list_invalid'
  /** An approval named a version that is no longer the one the server lists. */
  | 'approval_stale'
  /** The pin store's data is unreadable, malformed or inconsistent (digests that do not match): fail closed. */
  | 'pin_store_corrupt'
  /** The pin store file may be written by others (group or world writable). */
  | 'pin_store_insecure';

/** A refusal of the tool pinning layer, with its `reason`, and the server and tool concerned where known. */
export class ToolPinError extends Error {
  readonly reason: ToolPinReason;
  readonly serverDid: string | undefined;
  readonly tool: string | undefined;

  constructor(reason: ToolPinReason, message: string, options: { serverDid?: string; tool?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ToolPinError';
    this.reason = reason;
    this.serverDid = options.serverDid;
    this.tool = options.tool;
  }
}

/** The pinned fields of a tool (others, such as `_meta` or `icons`, are ignored); throws a `TypeError` for a nameless tool. */
export function toolDefinition(tool: { name: string } & Record<string, unknown>): ToolDefinition {
  if (typeof tool !== 'object' || tool === null || typeof tool.name !== 'string') throw new TypeError('a tool definition needs a string "name"');
  const out: Record<string, unknown> = {};
  for (const field of PINNED_TOOL_FIELDS) if (Object.hasOwn(tool, field) && tool[field] !== undefined) out[field] = tool[field];
  return out as unknown as ToolDefinition;
}

/** Lowercase hex SHA3-256 of the canonical JSON of a tool's pinned fields (`toolDefinition`). */
export function toolDigest(tool: { name: string } & Record<string, unknown>): string {
  return sha3_256Hex(canonicalJson(toolDefinition(tool)));
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Checks stored pins of one server as a store reads them back: well-formed, unique names, digests that match their
 * definitions and DIDs that are DIDs. Throws `ToolPinError('pin_store_corrupt')` naming what is wrong.
 */
export function validateToolPins(value: unknown, where: string): ToolPin[] {
  const corrupt = (what: string): never => {
    throw new ToolPinError('pin_store_corrupt', `tool pin store ${where}: ${what}`);
  };
  if (!Array.isArray(value)) return corrupt('the pins are not an array');
  const seen = new Set<string>();
  return value.map((pin: unknown, i) => {
    if (typeof pin !== 'object' || pin === null || Array.isArray(pin)) return corrupt(`pin ${i} is not an object`);
    const { name, digest, definition, signer, pinnedAt } = pin as Record<string, unknown>;
    if (typeof name !== 'string' || name === '') return corrupt(`pin ${i} has no name`);
    if (seen.has(name)) return corrupt(`tool ${JSON.stringify(name)} is pinned twice`);
    seen.add(name);
    if (typeof definition !== 'object' || definition === null || (definition as { name?: unknown }).name !== name) {
      return corrupt(`pin ${JSON.stringify(name)} has no definition of that name`);
    }
    if (typeof digest !== 'string' || !HEX64.test(digest)) return corrupt(`pin ${JSON.stringify(name)} has no SHA3-256 digest`);
    let actual: string;
    try {
      actual = toolDigest(definition as { name: string });
    } catch {
      return corrupt(`pin ${JSON.stringify(name)} has a definition that is not JSON`);
    }
    if (actual !== digest) return corrupt(`pin ${JSON.stringify(name)}: the digest does not match the definition (edited?)`);
    if (!isDid(signer)) return corrupt(`pin ${JSON.stringify(name)} has no signer DID`);
    if (typeof pinnedAt !== 'number' || !Number.isFinite(pinnedAt)) return corrupt(`pin ${JSON.stringify(name)} has no time`);
    return { name, digest, definition: toolDefinition(definition as { name: string }), signer, pinnedAt };
  });
}

/** A `ToolPinStore` in memory (pins last as long as the process; copies in and out, so callers cannot alter it). */
export class MemoryToolPinStore implements ToolPinStore {
  readonly #servers = new Map<string, string>();

  /** The pins of `serverDid`, or `undefined` for a server never seen. */
  async get(serverDid: string): Promise<readonly ToolPin[] | undefined> {
    const text = this.#servers.get(serverDid);
    return text === undefined ? undefined : validateToolPins(JSON.parse(text), 'memory');
  }

  /** Replaces the pins of `serverDid`. */
  async set(serverDid: string, pins: readonly ToolPin[]): Promise<void> {
    this.#servers.set(serverDid, JSON.stringify(validateToolPins(structuredClone(pins), 'memory')));
  }
}
