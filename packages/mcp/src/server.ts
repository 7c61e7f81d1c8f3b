/**
 * `PQCMCPServer`: the seed's standalone server, rebuilt on the official MCP SDK `McpServer`. Tools are registered
 * once; every MCP session (and every in-memory request) gets its own `McpServer` with them, as the SDK requires.
 * The PQC protocol itself is `@pqc-mcp/core`'s: in memory through `createPQCHandler`, over HTTP through the
 * `@pqc-mcp/hono` middleware on `@hono/node-server`. Both share one session store and one audit trail.
 */
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { serve } from '@hono/node-server';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  normalizeObjectSchema,
  type AnySchema,
  type SchemaOutput,
  type ShapeOutput,
  type ZodRawShapeCompat,
} from '@modelcontextprotocol/sdk/server/zod-compat.js';
import { toJsonSchemaCompat } from '@modelcontextprotocol/sdk/server/zod-json-schema-compat.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  isInitializeRequest,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
  type Tool,
  type ToolAnnotations,
} from '@modelcontextprotocol/sdk/types.js';
import {
  AuditLog,
  MemorySessionStore,
  createPQCHandler,
  type AuditEntry,
  type PQCHandler,
  type PQCRequestContext,
  type PQCServerOptions,
} from '@pqc-mcp/core';
import { pqc, type PQCVariables } from '@pqc-mcp/hono';
import { Hono } from 'hono';
import { z } from 'zod';

/** Options of `PQCMCPServer`: the PQC layer's options (core's `PQCServerOptions`) and the MCP server's name. */
export interface PQCMCPServerOptions extends PQCServerOptions {
  /** The MCP server name announced at `initialize` (default `pqc-mcp-server`). */
  name?: string;
  /** The MCP server version announced at `initialize` (default `0.1.0`). */
  version?: string;
  /** Instructions announced at `initialize`. */
  instructions?: string;
  /** Answer HTTP POSTs with one JSON body instead of an SSE stream (default false: SSE). `handleRequest` always uses JSON. */
  enableJsonResponse?: boolean;
}

/** A JSON Schema for a tool's arguments; MCP requires `type: "object"`. */
export interface JsonSchemaObject {
  type: 'object';
  properties?: Record<string, unknown>;
  required?: readonly string[];
  [keyword: string]: unknown;
}

/** What a tool's arguments are described by: a zod raw shape, a zod schema (an object), or a JSON Schema. */
export type ToolInputSchema = ZodRawShapeCompat | AnySchema | JsonSchemaObject;

/** What a tool handler is called with besides its arguments. */
export interface ToolContext {
  /** Who called: the client DID pinned by the handshake, the PQC session and profile (always set for verified calls). */
  pqc: PQCRequestContext | undefined;
  /** Aborted when the client cancels the call. */
  signal: AbortSignal;
  /** The MCP SDK's request context (progress, notifications, request id). */
  extra: RequestHandlerExtra<ServerRequest, ServerNotification>;
}

/**
 * A tool handler. Its return value becomes the MCP result: a string → one text content; an object with a `content`
 * array → used as the `CallToolResult`; `undefined` → no content; anything else → its JSON as text. A thrown error
 * becomes a result with `isError: true` and the error's message (the MCP SDK's behaviour).
 */
export type ToolHandler<Args> = (args: Args, context: ToolContext) => unknown;

/** How a tool is described. */
export interface ToolConfig<S extends ToolInputSchema | undefined = ToolInputSchema | undefined> {
  description?: string;
  title?: string;
  inputSchema?: S;
  annotations?: ToolAnnotations;
}

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
  config: { title?: string; description?: string; inputSchema: ZodRawShapeCompat | AnySchema; annotations?: ToolAnnotations };
  handler: ToolHandler<never>;
}

interface McpSession {
  transport: WebStandardStreamableHTTPServerTransport;
  server: McpServer;
  peerDid: string | undefined;
  /** Epoch ms of the last request in this session. */
  lastSeen: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A zod schema of either major version (v4 has `_zod`, v3 `_def`). */
function isZodSchema(value: unknown): value is AnySchema {
  return typeof value === 'object' && value !== null && ('_zod' in value || '_def' in value);
}

/**
 * The schema handed to the SDK for a tool. A JSON Schema is converted with `z.fromJSONSchema` (real validation) and
 * keeps its own text in `tools/list` (zod metadata overrides the generated keys). A JSON Schema zod cannot convert
 * (for example `$ref` into `definitions`) is passed through: listed as given, arguments only checked to be an object.
 */
function toSdkSchema(name: string, input: unknown): ZodRawShapeCompat | AnySchema {
  if (input === undefined) return z.object({});
  if (isZodSchema(input)) {
    if (!normalizeObjectSchema(input)) throw new TypeError(`PQCMCPServer.tool("${name}"): inputSchema must be a zod object (z.object({...}))`);
    return input;
  }
  if (isPlainObject(input)) {
    const values = Object.values(input);
    if (values.length === 0) return z.object({});
    if (values.every(isZodSchema)) return input as ZodRawShapeCompat;
    if (input.type === 'object') {
      const json = structuredClone(input);
      let schema: z.ZodType;
      try {
        schema = z.fromJSONSchema(json as Parameters<typeof z.fromJSONSchema>[0]);
        if (!normalizeObjectSchema(schema)) schema = z.looseObject({});
      } catch {
        schema = z.looseObject({});
      }
      // zod reads a metadata `id` as a registry key (unique per process): a draft-4 `id` member is not listed.
      const { id: _id, ...listed } = json;
      return schema.meta(listed);
    }
  }
  throw new TypeError(
    `PQCMCPServer.tool("${name}"): inputSchema must be a zod raw shape ({ a: z.number() }), a zod object, ` +
      'or a JSON Schema with type "object"',
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

function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: '2.0', id: null, error: { code, message } }, { status });
}

function authInfoOf(context: PQCRequestContext | undefined): AuthInfo | undefined {
  return context ? { token: '', clientId: context.peerDid, scopes: [], extra: { pqc: context } } : undefined;
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/**
 * A post-quantum signed MCP server: register tools, then serve them over HTTP with `run()`, or answer signed messages
 * in memory with `handleHandshake()` / `handleRequest()` (for tests and custom transports).
 */
export class PQCMCPServer {
  /** The MCP server name and version announced at `initialize`. */
  readonly name: string;
  readonly version: string;
  /** The PQC layer (core's web-standard handler) that `handleHandshake` and `handleRequest` go through. */
  readonly handler: PQCHandler;
  /** The audit trail of every handshake, verified request, signed response and rejection (in memory and HTTP). */
  readonly audit: AuditLog;
  /** The Hono app `run()` serves: the `@pqc-mcp/hono` middleware in front of stateful MCP sessions. */
  readonly app: Hono<{ Variables: PQCVariables }>;

  readonly #options: PQCMCPServerOptions;
  readonly #tools = new Map<string, RegisteredTool>();
  readonly #sessions = new Map<string, McpSession>();
  readonly #maxSessions: number;
  readonly #idleMs: number;
  #http: HttpServer | undefined;
  #closeGraceMs = 2000;
  #closing: Promise<void> | undefined;

  constructor(options: PQCMCPServerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('PQCMCPServer: options are required ({ identity })');
    const { name, version, instructions, enableJsonResponse, ...pqcOptions } = options;
    if (name !== undefined && typeof name !== 'string') throw new TypeError('PQCMCPServer: option "name" must be a string');
    if (version !== undefined && typeof version !== 'string') throw new TypeError('PQCMCPServer: option "version" must be a string');
    if (instructions !== undefined && typeof instructions !== 'string') {
      throw new TypeError('PQCMCPServer: option "instructions" must be a string');
    }
    this.name = name ?? 'pqc-mcp-server';
    this.version = version ?? '0.1.0';
    this.#options = { ...options, enableJsonResponse: enableJsonResponse === true };
    // One store and one audit trail for the in-memory handler and the HTTP middleware: a session opened by one is
    // known to the other, and `getAuditLog()` shows both.
    if (pqcOptions.audit !== undefined && !(pqcOptions.audit instanceof AuditLog) && typeof pqcOptions.audit !== 'function') {
      throw new TypeError('pqc: option "audit" must be an AuditLog or a function (entry) => void');
    }
    const audit = pqcOptions.audit instanceof AuditLog ? pqcOptions.audit : new AuditLog(pqcOptions.audit ? { sink: pqcOptions.audit } : {});
    const shared: PQCServerOptions = { ...pqcOptions, store: pqcOptions.store ?? new MemorySessionStore(), audit };
    this.handler = createPQCHandler(shared); // validates every PQC option now
    this.audit = this.handler.audit;
    this.#maxSessions = shared.maxSessions ?? 10_000;
    this.#idleMs = (shared.sessionTtlSec ?? 3600) * 1000;

    this.app = new Hono<{ Variables: PQCVariables }>();
    this.app.use('*', pqc(shared));
    for (const endpoint of this.handler.endpoints) {
      this.app.all(endpoint, (c) => this.#sessionApp(c.req.raw, c.get('pqcBody'), c.get('pqc')));
    }
  }

  /** The server's DID. */
  get did(): string {
    return this.handler.identity.did;
  }

  /** The web-standard fetch handler of the HTTP server (`app.fetch`): for Bun, Deno, workers or tests. */
  readonly fetch = (request: Request): Promise<Response> => Promise.resolve(this.app.fetch(request));

  /**
   * Registers a tool. `inputSchema` is a zod raw shape (`{ a: z.number() }`), a zod object, or a JSON Schema
   * (`{ type: 'object', properties: ... }`, validated through `z.fromJSONSchema`, or passed through when zod cannot
   * convert it). Throws if the name is taken. Returns the server, for chaining.
   */
  tool<Shape extends ZodRawShapeCompat>(name: string, config: ToolConfig<Shape>, handler: ToolHandler<ShapeOutput<Shape>>): this;
  tool<S extends AnySchema>(name: string, config: ToolConfig<S>, handler: ToolHandler<SchemaOutput<S>>): this;
  tool(name: string, config: ToolConfig<JsonSchemaObject | undefined>, handler: ToolHandler<Record<string, unknown>>): this;
  tool(name: string, config: ToolConfig, handler: ToolHandler<never>): this {
    if (typeof name !== 'string' || name === '') throw new TypeError('PQCMCPServer.tool: name must be a non-empty string');
    if (this.#tools.has(name)) throw new Error(`PQCMCPServer.tool: a tool named "${name}" is already registered`);
    if (typeof config !== 'object' || config === null) throw new TypeError(`PQCMCPServer.tool("${name}"): config must be an object`);
    if (typeof handler !== 'function') throw new TypeError(`PQCMCPServer.tool("${name}"): handler must be a function`);
    const tool: RegisteredTool = {
      name,
      config: {
        title: config.title,
        description: config.description,
        inputSchema: toSdkSchema(name, config.inputSchema),
        annotations: config.annotations,
      },
      handler,
    };
    this.#tools.set(name, tool);
    // Sessions already open learn the tool too (the SDK tells their clients: notifications/tools/list_changed).
    // A session opened while the server had no tool announced no tools capability and cannot gain one.
    for (const session of this.#sessions.values()) {
      try {
        this.#register(session.server, tool);
      } catch {
        // the tool reaches that client with its next session
      }
    }
    return this;
  }

  /** The tools as `tools/list` shows them: name, title, description, input JSON Schema, annotations. */
  getToolList(): Tool[] {
    return [...this.#tools.values()].map(({ name, config }) => {
      const object = normalizeObjectSchema(config.inputSchema);
      const tool: Tool = {
        name,
        inputSchema: (object ? toJsonSchemaCompat(object, { strictUnions: true, pipeStrategy: 'input' }) : { type: 'object' }) as Tool['inputSchema'],
      };
      if (config.title !== undefined) tool.title = config.title;
      if (config.description !== undefined) tool.description = config.description;
      if (config.annotations !== undefined) tool.annotations = config.annotations;
      return tool;
    });
  }

  /** A new SDK `McpServer` with every registered tool (one per MCP session, as the SDK requires). */
  createMcpServer(): McpServer {
    const server = new McpServer({ name: this.name, version: this.version }, { instructions: this.#options.instructions });
    for (const tool of this.#tools.values()) this.#register(server, tool);
    return server;
  }

  #register(server: McpServer, tool: RegisteredTool): void {
    const handler = tool.handler as ToolHandler<unknown>;
    server.registerTool(
      tool.name,
      tool.config as { inputSchema: AnySchema },
      (async (args: unknown, extra: RequestHandlerExtra<ServerRequest, ServerNotification>) =>
        toCallToolResult(
          await handler(args, { pqc: extra.authInfo?.extra?.pqc as PQCRequestContext | undefined, signal: extra.signal, extra }),
        )) as never,
    );
  }

  /**
   * Answers a handshake request (its JSON text) in memory, as `POST <base>/pqc/handshake` would: the signed handshake
   * response text. A refused handshake comes back as the unsigned JSON-RPC error of docs/PROTOCOL.md §6 (its
   * `error.data.pqc` says why), exactly what HTTP would carry.
   */
  async handleHandshake(text: string | Uint8Array): Promise<string> {
    const response = await this.handler.handle(
      new Request(new URL(this.handler.handshakePath, 'http://localhost'), { method: 'POST', headers: MCP_HEADERS, body: text as BodyInit }),
      () => Promise.resolve(new Response(null, { status: 404 })),
    );
    return response.text();
  }

  /**
   * Answers a signed JSON-RPC message (or batch) in memory, as a POST to the endpoint would: the signed response
   * text, `''` for a notification. Each call runs on a fresh stateless MCP server (no `initialize` needed). A message
   * the PQC layer refuses comes back as the unsigned JSON-RPC error of docs/PROTOCOL.md §6, exactly what HTTP would carry.
   */
  async handleRequest(text: string | Uint8Array): Promise<string> {
    const response = await this.handler.handle(
      new Request(new URL(this.handler.endpoints[0]!, 'http://localhost'), { method: 'POST', headers: MCP_HEADERS, body: text as BodyInit }),
      async (request, parsedBody, context) => {
        const server = this.createMcpServer();
        const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        await server.connect(transport);
        try {
          const answer = await transport.handleRequest(request, { parsedBody, authInfo: authInfoOf(context) });
          // A JSON answer is complete once returned: keep its text before the server closes.
          return new Response(await answer.text(), { status: answer.status, headers: answer.headers });
        } finally {
          await server.close();
        }
      },
    );
    return response.text();
  }

  /** The stateful MCP endpoint behind the PQC middleware: one SDK transport and server per Mcp-Session-Id. */
  async #sessionApp(request: Request, parsedBody: unknown, context: PQCRequestContext | undefined): Promise<Response> {
    const authInfo = authInfoOf(context);
    const sessionId = request.headers.get('mcp-session-id');
    if (sessionId !== null) {
      const session = this.#sessions.get(sessionId);
      // An MCP session belongs to the client DID that opened it: another authenticated client cannot use it.
      if (!session || session.peerDid !== context?.peerDid) return jsonRpcError(404, -32001, 'Session not found');
      session.lastSeen = Date.now();
      return session.transport.handleRequest(request, { parsedBody, authInfo });
    }
    if (request.method !== 'POST' || !isInitializeRequest(parsedBody)) {
      return jsonRpcError(400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    }
    if (this.#closing) return jsonRpcError(503, -32000, 'Server is shutting down');
    if (this.#sessions.size >= this.#maxSessions) await this.#closeIdleSessions();
    if (this.#sessions.size >= this.#maxSessions) return jsonRpcError(503, -32000, 'Too many MCP sessions');
    const server = this.createMcpServer();
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => globalThis.crypto.randomUUID(),
      enableJsonResponse: this.#options.enableJsonResponse,
      onsessioninitialized: (id) => {
        this.#sessions.set(id, { transport, server, peerDid: context?.peerDid, lastSeen: Date.now() });
      },
      onsessionclosed: (id) => {
        this.#sessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) this.#sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    return transport.handleRequest(request, { parsedBody, authInfo });
  }

  /** Closes the MCP sessions without a request for longer than the PQC session lifetime (clients that vanished). */
  async #closeIdleSessions(): Promise<void> {
    const limit = Date.now() - this.#idleMs;
    const idle = [...this.#sessions].filter(([, s]) => s.lastSeen < limit);
    for (const [id] of idle) this.#sessions.delete(id);
    await Promise.allSettled(idle.map(([, s]) => s.server.close()));
  }

  /**
   * Serves the MCP endpoint and the handshake over HTTP (`@pqc-mcp/hono` on `@hono/node-server`). Resolves once
   * listening, with the endpoint URL and the port.
   */
  async run(options: RunOptions = {}): Promise<RunningServer> {
    if (this.#http) throw new Error('PQCMCPServer.run: already running');
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 0;
    if (typeof host !== 'string' || host === '') throw new TypeError('PQCMCPServer.run: option "host" must be a non-empty string');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError('PQCMCPServer.run: option "port" must be an integer 0–65535');
    this.#closeGraceMs = options.closeGraceMs ?? 2000;
    this.#closing = undefined;
    const http = await new Promise<HttpServer>((resolve, reject) => {
      const server = serve({ fetch: this.app.fetch, hostname: host, port }, () => {
        server.off('error', reject);
        resolve(server as HttpServer);
      }) as HttpServer;
      server.once('error', reject);
    });
    this.#http = http;
    const actual = (http.address() as AddressInfo).port;
    const hostPart = host.includes(':') ? `[${host}]` : host;
    return {
      url: `http://${hostPart}:${actual}${this.handler.endpoints[0]}`,
      port: actual,
      host,
      close: () => this.close(),
    };
  }

  /**
   * Stops: refuses new MCP sessions, closes every open one (their SSE streams end), stops listening and waits for
   * open connections to finish, cutting those still open after `closeGraceMs`. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.allSettled(sessions.map((s) => s.server.close()));
    const http = this.#http;
    this.#http = undefined;
    if (!http) return;
    await new Promise<void>((resolve) => {
      // Connections become idle as their last response ends (the SSE streams just closed): close them as they do.
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
    return this.audit.entries();
  }
}
