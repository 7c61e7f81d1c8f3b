/**
 * One MCP session of a stdio upstream: a child process of its own (the SDK's `StdioClientTransport`) behind the SDK's
 * Streamable HTTP server transport, messages piped both ways untouched. Stdio carries no stream routing, so the
 * session routes what the child writes: a response to the POST stream of its request, a progress notification to
 * the request its token came with, anything else (a sampling request, a log message) to the newest request still
 * open, or to the client's GET stream when none is. The child is hostile until proven otherwise: a response to no
 * open request, or progress for no known token, is dropped; a line longer than the bound ends the session; its
 * stderr is logged line by line, sanitized, bounded and rate-limited.
 */
import type { Readable } from 'node:stream';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import { WebStandardStreamableHTTPServerTransport, type JSONRPCMessage } from '@modelcontextprotocol/server';
import { logSafe, logText } from '../log.js';
import { describeError } from '../util.js';
import { INTERNAL_ERROR } from './upstream.js';

/** How to run the child processes. */
export interface ChildCommand {
  command: string;
  args: readonly string[];
  /** Variables given to the child besides the SDK's safe default set (HOME, PATH, ...). */
  env: Readonly<Record<string, string>>;
  /** Bound on one line the child writes on stdout (one JSON-RPC message), bytes. */
  maxLineBytes: number;
}

type Id = string | number;
type Message = Record<string, unknown> & { id?: unknown; method?: unknown; params?: unknown };

/** Stderr lines logged per child per window, and the window. */
const STDERR_LINES = 50;
const STDERR_WINDOW_MS = 10_000;
/** Longest stderr line logged, characters. */
const STDERR_LINE_CHARS = 500;

function isId(value: unknown): value is Id {
  return typeof value === 'string' || typeof value === 'number';
}

function progressTokenOf(message: Message): unknown {
  const params = message.params as { _meta?: { progressToken?: unknown }; progressToken?: unknown } | undefined;
  return message.method === 'notifications/progress' ? params?.progressToken : params?._meta?.progressToken;
}

/** Logs a child's stderr: one line at a time, sanitized, cut, at most STDERR_LINES per window. */
function logStderr(stream: Readable, prefix: () => string, log: (line: string) => void): void {
  let buffer = '';
  let windowStart = 0;
  let count = 0;
  const emit = (line: string) => {
    const now = Date.now();
    if (now - windowStart > STDERR_WINDOW_MS) {
      if (count > STDERR_LINES) log(`${prefix()} stderr: ${count - STDERR_LINES} more lines dropped`);
      windowStart = now;
      count = 0;
    }
    if (++count <= STDERR_LINES) log(`${prefix()} stderr: ${logText(line, STDERR_LINE_CHARS)}`);
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      emit(buffer.slice(0, nl).replace(/\r$/, ''));
      buffer = buffer.slice(nl + 1);
    }
    if (buffer.length > STDERR_LINE_CHARS) {
      emit(buffer);
      buffer = '';
    }
  });
  stream.on('error', () => {});
}

export class StdioSession {
  readonly peerDid: string;
  lastUsed = Date.now();
  #http: WebStandardStreamableHTTPServerTransport;
  #child: StdioClientTransport;
  #mcpSessionId: string | undefined;
  /** Requests of the client the child has not answered, oldest first. */
  #open = new Map<Id, true>();
  #progress = new Map<unknown, Id>();
  #ended = false;
  #log: (line: string) => void;
  #onEnd: (session: StdioSession) => void;

  private constructor(peerDid: string, command: ChildCommand, log: (line: string) => void, onEnd: (session: StdioSession) => void) {
    this.peerDid = peerDid;
    this.#log = log;
    this.#onEnd = onEnd;
    this.#http = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      onsessioninitialized: (id) => {
        this.#mcpSessionId = id;
      },
      onsessionclosed: () => {
        void this.end('the client ended the MCP session');
      },
    });
    this.#child = new StdioClientTransport({
      command: command.command,
      args: [...command.args],
      env: { ...getDefaultEnvironment(), ...command.env },
      stderr: 'pipe',
      maxBufferSize: command.maxLineBytes,
    });
    this.#http.onmessage = (message) => this.#fromClient(message as unknown as Message);
    this.#http.onerror = () => {}; // the transport answers the client itself (400, 404, 406, ...)
    this.#child.onmessage = (message) => this.#fromChild(message as unknown as Message);
    this.#child.onerror = (err) => this.#log(`${this.name} wrote what is not a JSON-RPC message: ${logText(describeError(err))}`);
    this.#child.onclose = () => {
      if (!this.#ended) void this.end('the MCP server process exited');
    };
    logStderr(this.#child.stderr as Readable, () => this.name, log);
  }

  /** Spawns the child; rejects when it cannot be started (no such command, ...). */
  static async start(peerDid: string, command: ChildCommand, log: (line: string) => void, onEnd: (session: StdioSession) => void): Promise<StdioSession> {
    const session = new StdioSession(peerDid, command, log, onEnd);
    await session.#child.start();
    log(`${session.name}: started for ${peerDid}`);
    return session;
  }

  /** The Mcp-Session-Id, once the child's initialize request arrived. */
  get mcpSessionId(): string | undefined {
    return this.#mcpSessionId;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** True while a request of the client waits for the child's answer. */
  get busy(): boolean {
    return this.#open.size > 0;
  }

  get name(): string {
    return `mcp server pid ${this.#child.pid ?? '-'}${this.#mcpSessionId ? ` (MCP session ${this.#mcpSessionId})` : ''}`;
  }

  /** Serves one verified request of this session's client. */
  handle(request: Request, parsedBody: unknown): Promise<Response> {
    this.lastUsed = Date.now();
    return this.#http.handleRequest(request, { parsedBody });
  }

  #fromClient(message: Message): void {
    if (isId(message.id) && typeof message.method === 'string') {
      this.#open.set(message.id, true);
      const token = progressTokenOf(message);
      if (token !== undefined) this.#progress.set(token, message.id);
    } else if (message.method === 'notifications/cancelled') {
      const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (isId(id)) this.#settle(id);
    }
    this.#child.send(message as unknown as JSONRPCMessage).catch((err: unknown) => this.#log(`${this.name}: cannot write to it: ${logText(describeError(err))}`));
  }

  #settle(id: Id): void {
    this.#open.delete(id);
    for (const [token, owner] of this.#progress) if (owner === id) this.#progress.delete(token);
  }

  #fromChild(message: Message): void {
    if (this.#ended) return;
    let related: Id | undefined;
    if (typeof message.method !== 'string') {
      // A response: only to a request that is open.
      if (!isId(message.id) || !this.#open.has(message.id)) {
        this.#log(`${this.name}: dropped an answer to no open request (id ${logSafe(JSON.stringify(message.id ?? null), 40)})`);
        return;
      }
      related = message.id;
      this.#settle(message.id);
    } else if (message.method === 'notifications/progress') {
      related = this.#progress.get(progressTokenOf(message));
      if (related === undefined) return; // progress of nothing the client asked for
    } else {
      related = [...this.#open.keys()].at(-1);
    }
    this.#http
      .send(message as unknown as JSONRPCMessage, related !== undefined ? { relatedRequestId: related } : undefined)
      .catch(() => {}); // the client's stream is gone: nothing to deliver to
  }

  /** Ends the session: open requests get an error, the streams end, the child is stopped. Idempotent. */
  async end(why: string): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#log(`${this.name}: ${why}; the MCP session is over`);
    for (const id of this.#open.keys()) {
      await this.#http
        .send({ jsonrpc: '2.0', id, error: { code: INTERNAL_ERROR, message: `pqc-mcp gateway: ${why} before answering` } } as JSONRPCMessage, { relatedRequestId: id })
        .catch(() => {});
    }
    this.#open.clear();
    this.#progress.clear();
    this.#onEnd(this);
    await this.#http.close().catch(() => {});
    await this.#child.close().catch(() => {});
  }
}
