/**
 * `PQCMCPClient`: the seed's client, rebuilt on the official MCP SDK `Client` and `StreamableHTTPClientTransport`,
 * with `@pqc-mcp/core`'s `pqcFetch` underneath (handshake, pinning, signing, verification, re-handshake). This class
 * adds no protocol: it wires the SDK to `pqcFetch` and gives PQC failures and JSON-RPC errors typed shapes.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { McpError, type CallToolResult, type Implementation, type Tool } from '@modelcontextprotocol/sdk/types.js';
import {
  PQC_ERROR_CODE,
  PQCTransportError,
  errorForReason,
  pqcFetch,
  pqcReasonOf,
  type AuditEntry,
  type FetchLike,
  type PQCFetch,
  type PQCFetchOptions,
  type PQCSession,
} from '@pqc-mcp/core';
import { MCPToolError } from './errors.js';

/** Options of `PQCMCPClient`: where the server is, who it must be, and `pqcFetch`'s options. */
export interface PQCMCPClientOptions extends PQCFetchOptions {
  /** The server's MCP endpoint, e.g. `http://127.0.0.1:8000/mcp` (the handshake goes to `pqc/handshake` beside it). */
  serverUrl: string | URL;
  /** Name and version announced at `initialize` (default `pqc-mcp-client` 0.1.0). */
  clientInfo?: Implementation;
}

/** Per-call options: the MCP SDK's `RequestOptions` (`timeout`, `signal`, `onprogress`, ...). */
export type CallOptions = RequestOptions;

interface PendingCall {
  fail(error: Error): void;
}

/**
 * A body that reports its stream errors: the MCP SDK turns an error inside an SSE stream into a string on
 * `onerror` and leaves the request waiting; this keeps the original error (a `PQCTransportError` from `pqcFetch`).
 */
function watchBody(response: Response, onError: (error: unknown) => void): Response {
  if (!response.body) return response;
  const reader = response.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        onError(err);
        controller.error(err);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

/**
 * A post-quantum signed MCP client. `connect()` performs the handshake (pinning the server) and the MCP
 * `initialize`; every request is signed and every server message verified against the pinned key before the SDK
 * sees it. PQC failures throw `@pqc-mcp/core` errors (`reason` says why); JSON-RPC errors throw `MCPToolError`.
 */
export class PQCMCPClient {
  /** The MCP endpoint. */
  readonly serverUrl: URL;
  /** The PQC fetch wrapper (session, audit, pinned DID); hand it to other SDK transports if needed. */
  readonly fetch: PQCFetch;
  readonly #clientInfo: Implementation;
  readonly #pending = new Set<PendingCall>();
  readonly #guardedFetch: FetchLike;
  #client: Client | undefined;
  #transport: StreamableHTTPClientTransport | undefined;

  constructor(options: PQCMCPClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('PQCMCPClient: options are required ({ identity, serverUrl, serverDid })');
    let url: URL;
    try {
      url = new URL(String(options.serverUrl));
    } catch {
      throw new TypeError(`PQCMCPClient: option "serverUrl" must be an absolute URL, got ${String(options.serverUrl)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('PQCMCPClient: option "serverUrl" must be an http(s) URL');
    const info = options.clientInfo;
    if (info !== undefined && (typeof info !== 'object' || info === null || typeof info.name !== 'string' || typeof info.version !== 'string')) {
      throw new TypeError('PQCMCPClient: option "clientInfo" must be { name: string, version: string }');
    }
    const { serverUrl: _url, clientInfo: _info, ...fetchOptions } = options;
    this.serverUrl = url;
    this.#clientInfo = info ?? { name: 'pqc-mcp-client', version: '0.1.0' };
    this.fetch = pqcFetch(fetchOptions); // validates identity, pinning and profile now
    const fetch = this.fetch;
    this.#guardedFetch = async (input, init) => {
      const response = await fetch(input, init);
      if (response.headers.get('content-type')?.toLowerCase().startsWith('text/event-stream')) {
        return watchBody(response, (err) => {
          if (err instanceof PQCTransportError) this.#failPending(err);
        });
      }
      return response;
    };
  }

  /** The current PQC session (replaced when the client re-handshakes); `undefined` before `connect()`. */
  get session(): PQCSession | undefined {
    return this.fetch.session;
  }

  /** The server's DID, once pinned (given, or learnt at the first handshake with `trustOnFirstUse`). */
  get serverDid(): string | undefined {
    return this.fetch.serverDid;
  }

  /** The underlying MCP SDK `Client` once connected (resources, prompts, ...: every call still goes through PQC). */
  get mcpClient(): Client | undefined {
    return this.#client;
  }

  /** Performs the handshake and the MCP `initialize`. Resolves with the PQC session. */
  async connect(options?: CallOptions): Promise<PQCSession> {
    if (this.#client) throw new Error('PQCMCPClient.connect: already connected');
    const session = await this.fetch.handshake(this.serverUrl);
    const client = new Client(this.#clientInfo, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(this.serverUrl, { fetch: this.#guardedFetch });
    try {
      await this.#guard((signal) => client.connect(transport, { ...options, signal: anySignal(signal, options?.signal) }));
    } catch (err) {
      await client.close().catch(() => {});
      throw err;
    }
    this.#client = client;
    this.#transport = transport;
    return this.fetch.session ?? session;
  }

  /**
   * Calls a tool; resolves with its verified result. A result with `isError: true` (the tool failed, or does not
   * exist) is returned as is, as MCP defines; a JSON-RPC error throws `MCPToolError`; a PQC failure throws the core
   * error (`SignatureVerificationError`, `SessionExpiredError`, ...).
   */
  async callTool(name: string, args: Record<string, unknown> = {}, options?: CallOptions): Promise<CallToolResult> {
    const client = this.#connected('callTool');
    const result = await this.#guard(
      (signal) => client.callTool({ name, arguments: args }, undefined, { ...options, signal: anySignal(signal, options?.signal) }),
      name,
    );
    return result as CallToolResult;
  }

  /** Lists the server's tools (every page). */
  async listTools(options?: CallOptions): Promise<Tool[]> {
    const client = this.#connected('listTools');
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.#guard((signal) =>
        client.listTools(cursor === undefined ? undefined : { cursor }, { ...options, signal: anySignal(signal, options?.signal) }),
      );
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return tools;
  }

  /** Ends the MCP session (a signed DELETE, best effort) and closes the connection. */
  async close(): Promise<void> {
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    if (!client) return;
    await transport?.terminateSession().catch(() => {});
    await client.close();
  }

  /** The client's audit trail (every handshake, verified message and rejection), oldest first. */
  getAuditLog(): AuditEntry[] {
    return this.fetch.audit.entries();
  }

  #connected(method: string): Client {
    if (!this.#client) throw new Error(`PQCMCPClient.${method}: not connected (call connect() first)`);
    return this.#client;
  }

  /** Rejects every call in flight: a server message on a stream failed verification. */
  #failPending(error: PQCTransportError): void {
    for (const call of [...this.#pending]) call.fail(error);
  }

  /**
   * Runs one SDK operation: rejects it at once with the PQC error if a stream fails verification meanwhile (and
   * cancels the SDK request), and turns an SDK `McpError` into `MCPToolError`.
   */
  #guard<T>(operation: (signal: AbortSignal) => Promise<T>, tool?: string): Promise<T> {
    const abort = new AbortController();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        this.#pending.delete(call);
        return true;
      };
      const call: PendingCall = {
        fail: (error) => {
          if (!settle()) return;
          reject(error);
          abort.abort(error); // the SDK forgets the request and tells the server it is cancelled
        },
      };
      this.#pending.add(call);
      operation(abort.signal).then(
        (value) => {
          if (settle()) resolve(value);
        },
        (err: unknown) => {
          if (settle()) reject(toError(err, tool));
        },
      );
    });
  }
}

function toError(err: unknown, tool: string | undefined): Error {
  if (err instanceof PQCTransportError) return err;
  if (err instanceof McpError) {
    // pqcFetch answers a request whose response failed verification with a local -32010 error: give it its class.
    const reason = err.code === PQC_ERROR_CODE ? pqcReasonOf({ error: { data: err.data } }) : undefined;
    return reason ? errorForReason(reason, err.message.replace(/^MCP error -?\d+: /, '')) : MCPToolError.from(err, tool);
  }
  return err instanceof Error ? err : new Error(String(err));
}

function anySignal(own: AbortSignal, other: AbortSignal | undefined): AbortSignal {
  return other ? AbortSignal.any([own, other]) : own;
}
