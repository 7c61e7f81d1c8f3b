/**
 * What `bridge` and `call` share: the flags that say how to reach a PQC server (its pin, the profile, the handshake
 * URL, the MCP negotiation mode) and the `pqcFetch` they make; the v1 peers' plain JSON-RPC exchange.
 */
import { pqcFetch, type AgentIdentity, type PQCFetch, type RotationChain } from '@pqc-mcp/core';
import type { VersionNegotiationOptions } from '@modelcontextprotocol/client';
import { didArg, httpUrl, usage } from '../util.js';

/** The flags' parse options (merged into each command's). */
export const CLIENT_FLAGS = {
  identity: { type: 'string' },
  'server-did': { type: 'string' },
  'trust-on-first-use': { type: 'boolean' },
  profile: { type: 'string' },
  'handshake-url': { type: 'string' },
  'mcp-protocol': { type: 'string' },
} as const;

export interface ClientFlagValues {
  'server-did'?: string;
  'trust-on-first-use'?: boolean;
  profile?: string;
  'handshake-url'?: string;
  'mcp-protocol'?: string;
}

/** How the remote server is pinned. */
export interface ServerPin {
  serverDid?: string;
  trustOnFirstUse?: boolean;
}

/** The remote server's pin: `--server-did`, or `--trust-on-first-use`. */
export function serverPin(values: ClientFlagValues, command: string): ServerPin {
  const did = values['server-did'];
  const tofu = values['trust-on-first-use'] === true;
  if (did !== undefined && tofu) throw usage('give either --server-did or --trust-on-first-use, not both', command);
  if (did !== undefined) return { serverDid: didArg(did, '--server-did', command) };
  if (tofu) return { trustOnFirstUse: true };
  throw usage(
    '--server-did DID is required (GET <base>/pqc/handshake tells it), or accept the first server that answers with --trust-on-first-use',
    command,
  );
}

/** `--profile v2|v1` (default v2). */
export function profileArg(value: string | undefined, command: string): 1 | 2 {
  if (value === undefined || value === 'v2' || value === '2') return 2;
  if (value === 'v1' || value === '1') return 1;
  throw usage(`--profile must be v2 or v1, got ${JSON.stringify(value)}`, command);
}

/**
 * `--mcp-protocol legacy|auto|<version>`: the MCP SDK client's version negotiation (`legacy`, the default: the 2025
 * `initialize` handshake; `auto`: probe with `server/discover` and fall back to `initialize`; a version such as
 * `2026-07-28`: exactly that revision, no fallback).
 */
export function negotiationArg(value: string | undefined, command: string): VersionNegotiationOptions {
  if (value === undefined || value === 'legacy') return { mode: 'legacy' };
  if (value === 'auto') return { mode: 'auto' };
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return { mode: { pin: value } };
  throw usage(`--mcp-protocol must be legacy, auto or a protocol version such as 2026-07-28, got ${JSON.stringify(value)}`, command);
}

/** What the client flags resolve to. */
export interface ClientSetup {
  fetch: PQCFetch;
  pin: ServerPin;
  profile: 1 | 2;
  negotiation: VersionNegotiationOptions;
}

/**
 * The `pqcFetch` the flags describe. A key rotation the client follows (§11) is told through `notify` (a line for
 * stderr), so that the user can pin the new DID.
 */
export function clientSetup(values: ClientFlagValues, identity: AgentIdentity, command: string, notify?: (line: string) => void): ClientSetup {
  const pin = serverPin(values, command);
  const profile = profileArg(values.profile, command);
  const handshakeUrl = values['handshake-url'] !== undefined ? httpUrl(values['handshake-url'], '--handshake-url', command) : undefined;
  if (profile === 1 && values['mcp-protocol'] !== undefined) {
    throw usage('--mcp-protocol does not apply to --profile v1 (v1 peers take plain JSON-RPC, without initialize)', command);
  }
  const negotiation = negotiationArg(values['mcp-protocol'], command);
  const onRotation = (chain: RotationChain) =>
    notify?.(
      `pqc-mcp: the server rotated its key: followed ${chain.records.length} signed record${chain.records.length === 1 ? '' : 's'} from ` +
        `${chain.fromDid} to ${chain.did}; pin it from now on (--server-did ${chain.did})`,
    );
  return { fetch: pqcFetch({ identity, ...pin, profile, handshakeUrl, onRotation }), pin, profile, negotiation };
}

/** A JSON-RPC error a v1 peer answered. */
export class PeerRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'PeerRpcError';
  }
}

/**
 * One plain JSON-RPC request to a v1 (`pqc-mcp-transport`) peer through `pqcFetch`: no `initialize`, one verified
 * JSON answer. Resolves its `result`; a JSON-RPC error is a `PeerRpcError`.
 */
export async function v1Request(fetch: PQCFetch, url: URL, id: number, method: string, params: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    signal,
  });
  const text = await response.text();
  let message: { result?: unknown; error?: { code?: unknown; message?: unknown } };
  try {
    message = JSON.parse(text) as typeof message;
  } catch {
    throw new Error(`the v1 peer answered HTTP ${response.status} with what is not JSON`);
  }
  if (message.error) throw new PeerRpcError(Number(message.error.code), String(message.error.message));
  if (!response.ok) throw new Error(`the v1 peer answered HTTP ${response.status}`);
  return message.result;
}

/** A text content block. */
interface TextBlock {
  type: 'text';
  text: string;
}

/**
 * A tool result as an MCP `CallToolResult`: an MCP result stays as it is; a v1 peer's `{"content": <value>}` (or
 * any other value) becomes one text block (a string as it is, anything else as JSON).
 */
export function asCallToolResult(result: unknown): { content: unknown[]; isError?: boolean } & Record<string, unknown> {
  if (result !== null && typeof result === 'object' && Array.isArray((result as { content?: unknown }).content)) {
    return result as { content: unknown[] };
  }
  const value = result !== null && typeof result === 'object' && 'content' in result ? (result as { content: unknown }).content : result;
  const block: TextBlock = { type: 'text', text: typeof value === 'string' ? value : JSON.stringify(value ?? null) };
  return { content: [block] };
}
