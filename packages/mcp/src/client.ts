/**
 * `PQCMCPClient`: the Python predecessor's client API (`connect`, `listTools`, `callTool`, `close`) on the official
 * MCP SDK v2 `Client`, with `@pqc-mcp/core`'s `pqcFetch` underneath (handshake, pinning, signing, verification). It
 * speaks both MCP eras (`versionNegotiation`: the 2026-07-28 protocol, or 2025-11-25 with `initialize`) and, with
 * `profile: 1`, the raw JSON-RPC of v1 peers (`pqc-mcp-transport` servers). It adds no protocol of its own.
 */
import {
  Client,
  ProtocolError,
  SdkError,
  StreamableHTTPClientTransport,
  type CallToolResult,
  type Implementation,
  type RequestOptions,
  type Tool,
  type VersionNegotiationOptions,
} from '@modelcontextprotocol/client';
import { PQCTransportError, ToolPinError, errorForReason, isPQCReason, pqcFetch, type AuditEntry, type PQCFetch, type PQCFetchOptions, type PQCSession } from '@pqc-mcp/core';
import { MCPToolError } from './errors.js';
import { sdkToolsPage } from './sdk-list.js';
import { DEFAULT_MAX_PAGES, ToolPinning, validatePinningOptions, type ToolApproval, type ToolPinningOptions, type ToolsChangedEvent } from './tool-pinning.js';
import { v1CallToolResult, v1Request, v1Tools, type V1Result } from './v1.js';

/** Options of `PQCMCPClient`: where the server is, who it must be, `pqcFetch`'s options, and the MCP era. */
export interface PQCMCPClientOptions extends PQCFetchOptions {
  /** The server's MCP endpoint, e.g. `http://127.0.0.1:8000/mcp` (the handshake goes to `pqc/handshake` beside it). */
  serverUrl: string | URL;
  /** Name and version announced to the server (default `pqc-mcp-client` 0.1.0). */
  clientInfo?: Implementation;
  /**
   * Which MCP era to speak (the SDK's `versionNegotiation`; default `{ mode: 'auto' }`: the 2026-07-28 protocol where
   * the server offers it, else 2025-11-25). Ignored with `profile: 1`.
   */
  versionNegotiation?: VersionNegotiationOptions;
  /**
   * Tool pinning against silent changes: the first listing of the server's tools is pinned in `store`; a tool that
   * later differs, appears or disappears raises `onToolsChanged` and is refused (`ToolPinError`) until approved.
   */
  toolPins?: ToolPinningOptions;
}

/** Per-call options: the MCP SDK's `RequestOptions` (`timeout`, `signal`, `onprogress`, ...). */
export type CallOptions = RequestOptions;

/**
 * A post-quantum signed MCP client. `connect()` performs the handshake (pinning the server) and the MCP connection;
 * every request is signed and every server message verified against the pinned key before the SDK sees it. PQC
 * failures throw `@pqc-mcp/core` errors (`reason` says why); JSON-RPC errors throw `MCPToolError`.
 */
export class PQCMCPClient {
  /** The MCP endpoint. */
  readonly serverUrl: URL;
  /** The PQC fetch wrapper (session, audit trail, pinned DID). */
  readonly fetch: PQCFetch;
  readonly #clientInfo: Implementation;
  readonly #negotiation: VersionNegotiationOptions;
  readonly #profile: 1 | 2;
  #client: Client | undefined;
  #transport: StreamableHTTPClientTransport | undefined;
  #connected = false;
  readonly #pinning: ToolPinning | undefined;
  readonly #maxPages: number | undefined;

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
    if (options.toolPins !== undefined) validatePinningOptions(options.toolPins, 'PQCMCPClient: option "toolPins"');
    const { serverUrl: _url, clientInfo: _info, versionNegotiation, toolPins, ...fetchOptions } = options;
    this.serverUrl = url;
    this.#clientInfo = info ?? { name: 'pqc-mcp-client', version: '0.1.0' };
    this.#negotiation = versionNegotiation ?? { mode: 'auto' };
    this.fetch = pqcFetch(fetchOptions); // validates identity, pinning and profile now
    this.#profile = options.profile ?? 2;
    this.#maxPages = toolPins ? (toolPins.maxPages ?? DEFAULT_MAX_PAGES) : undefined;
    this.#pinning =
      toolPins &&
      new ToolPinning(toolPins, {
        listPage: (cursor, callOptions) => this.#listPage(cursor, callOptions),
        serverDid: () => this.fetch.serverDid,
        signer: () => this.fetch.session?.peerDid,
      });
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

  /** Performs the handshake and the MCP connection (none for a v1 peer). Resolves with the PQC session. */
  async connect(options?: CallOptions): Promise<PQCSession> {
    if (this.#connected) throw new Error('PQCMCPClient.connect: already connected');
    const session = await this.fetch.handshake(this.serverUrl);
    if (this.#profile === 2) {
      const client = new Client(this.#clientInfo, {
        capabilities: {},
        versionNegotiation: this.#negotiation,
        // With tool pinning, the SDK's walk over tools/list pages is bounded by the pinning's maxPages.
        ...(this.#maxPages === undefined ? {} : { listMaxPages: this.#maxPages }),
      });
      const transport = new StreamableHTTPClientTransport(this.serverUrl, { fetch: this.fetch });
      const pinning = this.#pinning;
      if (pinning) client.setNotificationHandler('notifications/tools/list_changed', () => pinning.markStale());
      try {
        await client.connect(transport, options);
      } catch (err) {
        await client.close().catch(() => {});
        throw toError(err);
      }
      this.#client = client;
      this.#transport = transport;
    }
    this.#connected = true;
    this.#pinning?.reset();
    return this.fetch.session ?? session;
  }

  /**
   * Calls a tool; resolves with its verified result. A result with `isError: true` (the tool failed) is returned as
   * MCP defines; a JSON-RPC error throws `MCPToolError`; a PQC failure throws core's error.
   */
  async callTool(name: string, args: Record<string, unknown> = {}, options?: CallOptions): Promise<CallToolResult> {
    this.#assertConnected('callTool');
    if (this.#pinning) await this.#pinned(() => this.#pinning!.assertCallable(name));
    if (!this.#client) return v1CallToolResult(await this.#v1('tools/call', { name, arguments: args }, name));
    try {
      return (await this.#client.callTool({ name, arguments: args }, options)) as CallToolResult;
    } catch (err) {
      throw toError(err, name);
    }
  }

  /**
   * Lists the server's tools (every page). With `toolPins`, only the tools callable now: those whose current
   * definition is approved (a change is told to `onToolsChanged` and shown by `pendingToolChanges`).
   */
  async listTools(options?: CallOptions): Promise<Tool[]> {
    this.#assertConnected('listTools');
    if (this.#pinning) return this.#pinned(() => this.#pinning!.list(options));
    return this.#listAll(options);
  }

  /**
   * Approves pending tool changes (with `toolPins`): all of them, those of some tool names, or exactly the versions
   * an `onToolsChanged` event showed (`ToolPinError('approval_stale')` if the server lists others now). Records them
   * in the store; resolves with the names approved.
   */
  async approveTools(selection?: ToolApproval): Promise<string[]> {
    if (!this.#pinning) throw new Error('PQCMCPClient.approveTools: tool pinning is off (option "toolPins")');
    return this.#pinning.approve(selection);
  }

  /** The difference between the server's last listing and the approved tools (with `toolPins`), if any. */
  get pendingToolChanges(): ToolsChangedEvent | undefined {
    return this.#pinning?.pending;
  }

  async #listPage(cursor: string | undefined, options?: CallOptions): Promise<{ tools: Tool[]; nextCursor?: string }> {
    if (!this.#client) return { tools: v1Tools((await this.#v1('tools/list', {})).plain) };
    return sdkToolsPage(this.#client, cursor, options);
  }

  async #pinned<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw err instanceof ToolPinError ? err : toError(err);
    }
  }

  async #listAll(options?: CallOptions): Promise<Tool[]> {
    if (!this.#client) return v1Tools((await this.#v1('tools/list', {})).plain);
    const tools: Tool[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await this.#client.listTools(cursor === undefined ? undefined : { cursor }, options);
        tools.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor !== undefined);
    } catch (err) {
      throw toError(err);
    }
    return tools;
  }

  /** Ends the MCP session (if the server keeps one) and the PQC session (signed DELETEs, best effort), and closes. */
  async close(): Promise<void> {
    const client = this.#client;
    const transport = this.#transport;
    const wasConnected = this.#connected;
    this.#client = undefined;
    this.#transport = undefined;
    this.#connected = false;
    if (transport?.sessionId) await transport.terminateSession().catch(() => {});
    await client?.close().catch(() => {});
    if (wasConnected) await this.fetch.endSession().catch(() => {});
  }

  /** The client's audit trail (every handshake, verified message and rejection), oldest first. */
  getAuditLog(): AuditEntry[] {
    return this.fetch.audit.entries();
  }

  #assertConnected(method: string): void {
    if (!this.#connected) throw new Error(`PQCMCPClient.${method}: not connected (call connect() first)`);
  }

  async #v1(method: string, params: Record<string, unknown>, tool?: string): Promise<V1Result> {
    try {
      return await v1Request(this.fetch, this.serverUrl, method, params, tool);
    } catch (err) {
      throw toError(err, tool);
    }
  }
}

/** The error a caller gets: PQC failures as core's classes (also when the SDK wrapped them), JSON-RPC ones as `MCPToolError`. */
function toError(err: unknown, tool?: string): Error {
  if (err instanceof PQCTransportError || err instanceof MCPToolError) return err;
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (cause instanceof PQCTransportError) return cause;
  if (err instanceof ProtocolError) {
    // pqcFetch answers a request whose answer failed verification with a local -32010 error: give it its class.
    const pqc = (err.data as { pqc?: unknown } | undefined)?.pqc;
    if (isPQCReason(pqc)) return errorForReason(pqc, err.message);
    return new MCPToolError(err.code, err.message, err.data, { tool, cause: err });
  }
  if (err instanceof SdkError) return new MCPToolError(err.code, err.message, err.data, { tool, cause: err });
  return err instanceof Error ? err : new Error(String(err));
}
