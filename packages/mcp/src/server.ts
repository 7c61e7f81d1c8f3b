/**
 * `PQCMCPServer`: the Python predecessor's server API (`tool`, `handleRequest`, `handleHandshake`, `getToolList`,
 * `run`), on the official MCP SDK v2. Tools are registered once; the SDK's `createMcpHandler` builds an `McpServer`
 * with them for each request and serves both protocol eras (2025-11-25 with `initialize`, and the stateless
 * 2026-07-28). The PQC protocol is `@pqc-mcp/core`'s handler in front of it: verified callers reach every tool as the
 * SDK's `authInfo` (`ctx.http.authInfo`; here `context.pqc`). v1 peers (`pqc-mcp-transport`) are served too when
 * profile 1 is enabled: their raw JSON-RPC needs no `initialize`.
 */
import type { Server as HttpServer } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  McpServer,
  createMcpHandler,
  fromJsonSchema,
  type CallToolResult,
  type CreateMcpHandlerOptions,
  type McpHttpHandler,
  type ServerContext,
  type StandardSchemaWithJSON,
  type Tool,
  type ToolAnnotations,
} from '@modelcontextprotocol/server';
import {
  createPQCHandler,
  pqcAuthInfo,
  pqcContextOf,
  type AuditEntry,
  type AuditLog,
  type PQCHandler,
  type PQCRequestContext,
} from '@pqc-mcp/core';
import { nodeRequestTarget, resolveCryptoPool, sendWebResponse, toWebRequest, type NodeServerOptions } from '@pqc-mcp/core/node';

/** Options of `PQCMCPServer`: the PQC layer's (core's, with the Node `cryptoPool`), and the MCP server's own. */
export interface PQCMCPServerOptions extends NodeServerOptions {
  /** The MCP server name announced to clients (default `pqc-mcp-server`). */
  name?: string;
  /** The MCP server version announced to clients (default `0.1.0`). */
  version?: string;
  /** Instructions announced to clients. */
  instructions?: string;
  /**
   * How the 2026-07-28 era answers (the SDK's `responseMode`): `'auto'` (default: JSON, SSE once a tool sends progress),
   * `'json'` or `'sse'`. The 2025-11-25 era always streams (the SDK's choice); v1 peers always get JSON.
   */
  responseMode?: CreateMcpHandlerOptions['responseMode'];
}

/** A JSON Schema for a tool's arguments (MCP requires `type: "object"`). */
export interface JsonSchemaObject {
  type: 'object';
  properties?: Record<string, unknown>;
  required?: readonly string[];
  [keyword: string]: unknown;
}

/** What a tool's arguments are described by: a Standard Schema (`z.object({...})` of zod 4 or `zod/v4`) or a JSON Schema. */
export type ToolInputSchema = StandardSchemaWithJSON | JsonSchemaObject;

/** What a tool handler is called with besides its arguments. */
export interface ToolContext {
  /** Who called: the client DID pinned by the handshake, its PQC session and profile. */
  pqc: PQCRequestContext | undefined;
  /** Aborted when the client cancels the call. */
  signal: AbortSignal;
  /** The MCP SDK's request context (progress, logging, `mcpReq`, `http`). */
  ctx: ServerContext;
}

/**
 * A tool handler. Its return value becomes the MCP result: a string → one text content; an object with a `content`
 * array → the `CallToolResult` as is; `undefined` → no content; anything else → its JSON as text. A thrown error
 * becomes a result with `isError: true` and the error's message (the MCP SDK's behaviour).
 */
export type ToolHandler<Args> = (args: Args, context: ToolContext) => unknown;

/** How a tool is described. */
export interface ToolConfig<S extends ToolInputSchema | undefined = ToolInputSchema | undefined> {
  description?: string;
  title?: string;
  inputSchema?: S;
  outputSchema?: StandardSchemaWithJSON;
  annotations?: ToolAnnotations;
}

/** The argument type a schema describes. */
export type ArgsOf<S> = S extends StandardSchemaWithJSON ? StandardSchemaWithJSON.InferOutput<S> : Record<string, unknown>;

/** What `run` accepts. */
export interface RunOptions {
  /** Interface to listen on (default `127.0.0.1`: loopback only). */
  host?: string;
  /** Port (default 0: one the system picks; read it from the result). */
  port?: number;
  /** On `close()`, how long open connections may finish before they are cut, ms (default 2000). */
  closeGraceMs?: number;
}

/** A running HTTP server. */
export interface RunningServer {
  /** The MCP endpoint URL, e.g. `http://127.0.0.1:8000/mcp`. */
  url: string;
  port: number;
  host: string;
  /** Same as `PQCMCPServer.close()`. */
  close(): Promise<void>;
}

interface RegisteredTool {
  name: string;
  config: { title?: string; description?: string; inputSchema: StandardSchemaWithJSON; outputSchema?: StandardSchemaWithJSON; annotations?: ToolAnnotations };
  handler: ToolHandler<never>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function isStandardSchema(value: unknown): value is StandardSchemaWithJSON {
  return typeof value === 'object' && value !== null && '~standard' in value;
}

const EMPTY_OBJECT: JsonSchemaObject = { type: 'object', properties: {} };

/** The schema the SDK is given for a tool: a Standard Schema as is, a JSON Schema through the SDK's `fromJsonSchema`. */
function toSdkSchema(name: string, input: unknown): StandardSchemaWithJSON {
  if (input === undefined) return fromJsonSchema(EMPTY_OBJECT as never);
  if (isStandardSchema(input)) return input;
  if (isPlainObject(input) && input.type === 'object') return fromJsonSchema(structuredClone(input) as never);
  throw new TypeError(
    `PQCMCPServer.tool("${name}"): inputSchema must be a Standard Schema object (z.object({...}) of zod 4, or of 'zod/v4' ` +
      'with zod 3.25) or a JSON Schema with type "object"',
  );
}

/** The MCP result of a handler's return value. */
export function toCallToolResult(value: unknown): CallToolResult {
  if (typeof value === 'string') return { content: [{ type: 'text', text: value }] };
  if (value === undefined) return { content: [] };
  if (isPlainObject(value) && Array.isArray(value.content)) return value as CallToolResult;
  const text = JSON.stringify(value);
  return { content: [{ type: 'text', text: text ?? String(value) }] };
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/**
 * A post-quantum signed MCP server: register tools, then serve them over HTTP with `run()`, from any web-standard
 * runtime with `fetch`, or answer signed messages in memory with `handleHandshake()` / `handleRequest()`.
 */
export class PQCMCPServer {
  /** The MCP server name and version announced to clients. */
  readonly name: string;
  readonly version: string;
  /** The PQC layer (core's web-standard handler): its resolved options, identity, store and audit trail. */
  readonly handler: PQCHandler;
  /** The MCP SDK's handler behind it (both protocol eras, stateless). */
  readonly mcp: McpHttpHandler;

  readonly #instructions: string | undefined;
  readonly #tools = new Map<string, RegisteredTool>();
  #http: HttpServer | undefined;
  #closeGraceMs = 2000;
  #closing: Promise<void> | undefined;

  constructor(options: PQCMCPServerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('PQCMCPServer: options are required ({ identity })');
    const { name, version, instructions, responseMode, ...pqcOptions } = options;
    for (const [key, value] of Object.entries({ name, version, instructions })) {
      if (value !== undefined && typeof value !== 'string') throw new TypeError(`PQCMCPServer: option "${key}" must be a string`);
    }
    this.name = name ?? 'pqc-mcp-server';
    this.version = version ?? '0.1.0';
    this.#instructions = instructions;
    // Validates every PQC option now, and moves the crypto off the event loop on Node (cryptoPool, default 'auto').
    this.handler = createPQCHandler(resolveCryptoPool(pqcOptions));
    this.mcp = createMcpHandler(() => this.createMcpServer(), { responseMode });
  }

  /** The server's DID. */
  get did(): string {
    return this.handler.identity.did;
  }

  /** The audit trail of every handshake, verified request, signed answer and rejection. */
  get audit(): AuditLog {
    return this.handler.audit;
  }

  /**
   * The web-standard fetch handler of the whole server (the handshake path and the MCP endpoint): for Bun, Deno,
   * workers or tests. Other paths get 404.
   */
  readonly fetch = (request: Request): Promise<Response> =>
    this.handler.handle(request, async (verified, parsedBody, context) => {
      if (context === undefined) return Response.json({ error: 'not found' }, { status: 404 });
      return this.mcp.fetch(verified, { parsedBody, authInfo: pqcAuthInfo(context) });
    });

  /**
   * Registers a tool. `inputSchema` is a Standard Schema object (`z.object({ a: z.number() })` of zod 4, or of
   * `zod/v4` with zod 3.25) or a JSON Schema (`{ type: 'object', properties: ... }`, validated by the SDK). Throws if
   * the name is taken. Returns the server, for chaining.
   */
  tool<S extends ToolInputSchema | undefined>(name: string, config: ToolConfig<S>, handler: ToolHandler<ArgsOf<S>>): this {
    if (typeof name !== 'string' || name === '') throw new TypeError('PQCMCPServer.tool: name must be a non-empty string');
    if (this.#tools.has(name)) throw new Error(`PQCMCPServer.tool: a tool named "${name}" is already registered`);
    if (typeof config !== 'object' || config === null) throw new TypeError(`PQCMCPServer.tool("${name}"): config must be an object`);
    if (typeof handler !== 'function') throw new TypeError(`PQCMCPServer.tool("${name}"): handler must be a function`);
    this.#tools.set(name, {
      name,
      config: {
        title: config.title,
        description: config.description,
        inputSchema: toSdkSchema(name, config.inputSchema),
        outputSchema: config.outputSchema,
        annotations: config.annotations,
      },
      handler: handler as ToolHandler<never>,
    });
    return this;
  }

  /** A new SDK `McpServer` with every registered tool (the SDK's handler makes one per request). */
  createMcpServer(): McpServer {
    const server = new McpServer({ name: this.name, version: this.version }, { instructions: this.#instructions });
    for (const tool of this.#tools.values()) {
      const handler = tool.handler as ToolHandler<unknown>;
      server.registerTool(tool.name, tool.config, (async (args: unknown, ctx: ServerContext) =>
        toCallToolResult(await handler(args, { pqc: pqcContextOf(ctx.http?.authInfo), signal: ctx.mcpReq.signal, ctx }))) as never);
    }
    return server;
  }

  /** The tools as `tools/list` shows them: name, title, description, input JSON Schema, annotations. */
  async getToolList(): Promise<Tool[]> {
    const server = this.createMcpServer();
    const response = await createMcpHandler(() => server).fetch(
      new Request('http://localhost/mcp', {
        method: 'POST',
        headers: MCP_HEADERS,
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      }),
    );
    const text = await response.text();
    const data = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '{}');
    return ((JSON.parse(data) as { result?: { tools?: Tool[] } }).result?.tools ?? []) as Tool[];
  }

  /**
   * Answers a handshake request (its JSON text) in memory, as `POST <base>/pqc/handshake` would: the signed handshake
   * response text, or the unsigned JSON-RPC error of docs/PROTOCOL.md §6 when refused.
   */
  async handleHandshake(text: string | Uint8Array): Promise<string> {
    const url = new URL(this.handler.options.handshakePath, 'http://localhost');
    const response = await this.fetch(new Request(url, { method: 'POST', headers: MCP_HEADERS, body: text as BodyInit }));
    return response.text();
  }

  /**
   * Answers a signed JSON-RPC message (or batch) in memory, as a POST to the endpoint would (its `http` must name
   * `POST` and the endpoint's path): the signed answer text (one JSON body), `''` for a notification, or the unsigned
   * error of §6.
   */
  async handleRequest(text: string): Promise<string> {
    const first = (JSON.parse(text) as { _pqc?: { session_id?: unknown; v?: unknown } } | { _pqc?: { session_id?: unknown } }[]);
    const envelope = Array.isArray(first) ? first[0]?._pqc : first._pqc;
    const headers: Record<string, string> = { ...MCP_HEADERS };
    if ((envelope as { v?: unknown } | undefined)?.v === 2 && typeof envelope?.session_id === 'string') headers['pqc-session'] = envelope.session_id;
    const url = new URL(this.handler.options.endpoints[0]!, 'http://localhost');
    const response = await this.fetch(new Request(url, { method: 'POST', headers, body: text }));
    const body = await response.text();
    if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) return body;
    // One JSON body, as the v1 (Python) server answered: the stream's messages, signed, as a batch or one message.
    const messages = body
      .split(/\r?\n\r?\n/)
      .map((event) => /^data: (.*)$/m.exec(event)?.[1])
      .filter((data): data is string => data !== undefined && data.trim() !== '');
    return messages.length === 1 ? messages[0]! : `[${messages.join(',')}]`;
  }

  /** Serves the MCP endpoint and the handshake over HTTP (node:http). Resolves once listening. */
  async run(options: RunOptions = {}): Promise<RunningServer> {
    if (this.#http) throw new Error('PQCMCPServer.run: already running');
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 0;
    if (typeof host !== 'string' || host === '') throw new TypeError('PQCMCPServer.run: option "host" must be a non-empty string');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError('PQCMCPServer.run: option "port" must be an integer 0-65535');
    this.#closeGraceMs = options.closeGraceMs ?? 2000;
    this.#closing = undefined;
    const http = createServer((req, res) => {
      const request = toWebRequest(req);
      this.handler
        .handle(
          request,
          async (verified, parsedBody, context) => {
            if (context === undefined) return Response.json({ error: 'not found' }, { status: 404 });
            return this.mcp.fetch(verified, { parsedBody, authInfo: pqcAuthInfo(context) });
          },
          { target: nodeRequestTarget(req) },
        )
        .then((response) => sendWebResponse(res, response))
        .catch(() => {
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    this.#http = http;
    const actual = (http.address() as AddressInfo).port;
    const hostPart = host.includes(':') ? `[${host}]` : host;
    return { url: `http://${hostPart}:${actual}${this.handler.options.endpoints[0]}`, port: actual, host, close: () => this.close() };
  }

  /** Stops listening and waits for open connections, cutting those still open after `closeGraceMs`. Safe to repeat. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.mcp.close().catch(() => {});
    const http = this.#http;
    this.#http = undefined;
    if (!http) return;
    await new Promise<void>((resolve) => {
      const sweep = setInterval(() => http.closeIdleConnections(), 20);
      const timer = setTimeout(() => http.closeAllConnections(), this.#closeGraceMs);
      http.close(() => {
        clearInterval(sweep);
        clearTimeout(timer);
        resolve();
      });
      http.closeIdleConnections();
    });
  }

  /** The server's audit trail, oldest first. */
  getAuditLog(): AuditEntry[] {
    return this.handler.audit.entries();
  }
}
