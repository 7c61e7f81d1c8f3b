/**
 * A stdio upstream: an MCP server the gateway runs itself, one child process per MCP session (see README.md, "stdio
 * upstreams", for why not one shared process). An `initialize` from a verified client starts a child; its
 * Mcp-Session-Id belongs to that client (core records the owner, §9, and the session checks it again). A child that
 * exits ends its session (its open requests get an error; the client's next request gets 404 and it initializes
 * anew, in a fresh process): nothing is restarted under a client that believes its state is still there. Limits:
 * children in all (one more ends the least recently used idle one, or with none idle the least recently used of the
 * client holding the most; refused, 503, when no client holds two), children per client DID, those starting included
 * (one more ends that client's least recently used one), and an idle time after which a session's child is stopped.
 */
import type { Readable } from 'node:stream';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import type { PQCRequestContext } from '@pqc-mcp/core';
import { MCP_SESSION_HEADER } from '@pqc-mcp/core/internal';
import { logText } from '../log.js';
import { describeError } from '../util.js';
import { StdioSession, type ChildCommand } from './stdio-session.js';
import { jsonRpcErrorResponse, requestIdOf, type ForwardInfo, type Upstream } from './upstream.js';

export interface StdioLimits {
  /** Child processes in all (default 16). */
  maxChildren: number;
  /** Child processes per client DID (default 4). */
  maxChildrenPerClient: number;
  /** A session with no request for this long has its child stopped (default 30 min). */
  idleMs: number;
}

export const DEFAULT_STDIO_LIMITS: StdioLimits = { maxChildren: 16, maxChildrenPerClient: 4, idleMs: 30 * 60_000 };

export interface StdioUpstreamOptions extends ChildCommand {
  limits?: StdioLimits;
  /** How long the start-up check waits for the server's initialize answer (default 15 s). */
  checkTimeoutMs?: number;
  /** Where process events and the children's stderr are logged (one line each). */
  log(line: string): void;
}

/** JSON-RPC code the MCP SDKs answer an unknown session with. */
const SESSION_NOT_FOUND = -32001;
/** JSON-RPC code of the SDKs' transport-level refusals. */
const TRANSPORT_ERROR = -32000;

function isInitialize(body: unknown): boolean {
  const one = (m: unknown) => m !== null && typeof m === 'object' && (m as { method?: unknown }).method === 'initialize';
  return Array.isArray(body) ? body.some(one) : one(body);
}

/** The command line as one string, for messages. */
function shown(command: ChildCommand): string {
  return [command.command, ...command.args].map((a) => (/^[\w./:=@+-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export function createStdioUpstream(options: StdioUpstreamOptions): Upstream {
  const limits = options.limits ?? DEFAULT_STDIO_LIMITS;
  const command: ChildCommand = { command: options.command, args: options.args, env: options.env, maxLineBytes: options.maxLineBytes };
  const log = options.log;
  /** Every live session, started or starting. */
  const live = new Set<StdioSession>();
  /** The initialized ones, by Mcp-Session-Id. */
  const byId = new Map<string, StdioSession>();
  let closed = false;
  /** Children being started (counted against the limit before they exist). */
  let starting = 0;

  const forget = (session: StdioSession) => {
    live.delete(session);
    if (session.mcpSessionId !== undefined && byId.get(session.mcpSessionId) === session) byId.delete(session.mcpSessionId);
  };

  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const session of live) if (!session.busy && now - session.lastUsed > limits.idleMs) void session.end('idle for too long');
    },
    Math.max(1000, Math.min(30_000, Math.floor(limits.idleMs / 4))),
  );
  sweep.unref();

  /** Sessions chosen to make room, ending: no other request counts them or picks them again. */
  const ending = new Set<StdioSession>();
  /** Children being started, per client DID (counted against its share before they exist). */
  const startingFor = new Map<string, number>();
  const leastRecent = (sessions: StdioSession[]) => sessions.reduce((a, b) => (a.lastUsed <= b.lastUsed ? a : b));

  /**
   * The sessions to end so that one more of `did` fits, decided at once (no await), so that concurrent initializes
   * see each other: that client's least recently used past its share; then, when the gateway is full, the least
   * recently used idle session, or, with none idle, the least recently used of the client holding the most (never
   * one of a client with a single session). Undefined: refused.
   */
  function makeRoom(did: string): StdioSession[] | undefined {
    const open = [...live].filter((s) => !ending.has(s));
    const mine = open.filter((s) => s.peerDid === did);
    const victims: StdioSession[] = [];
    if (mine.length + (startingFor.get(did) ?? 0) >= limits.maxChildrenPerClient) {
      if (mine.length === 0) return undefined; // all of its share is still starting
      victims.push(leastRecent(mine));
    }
    if (open.length - victims.length + starting >= limits.maxChildren) {
      const others = open.filter((s) => !victims.includes(s));
      const idle = others.filter((s) => !s.busy);
      if (idle.length > 0) victims.push(leastRecent(idle));
      else {
        const counts = new Map<string, number>();
        for (const s of others) counts.set(s.peerDid, (counts.get(s.peerDid) ?? 0) + 1);
        const [heaviest, most] = [...counts].reduce((a, b) => (b[1] > a[1] ? b : a), ['', 0]);
        if (most < 2) return undefined;
        victims.push(leastRecent(others.filter((s) => s.peerDid === heaviest)));
      }
    }
    return victims;
  }

  async function open(request: Request, parsedBody: unknown, context: PQCRequestContext, info: ForwardInfo): Promise<Response> {
    const id = requestIdOf(parsedBody);
    const did = context.peerDid;
    const victims = makeRoom(did);
    if (victims === undefined) {
      info.report('upstream_error', 'too_many_children');
      return jsonRpcErrorResponse(503, id, TRANSPORT_ERROR, `pqc-mcp gateway: ${limits.maxChildren} MCP sessions are open, the most this gateway runs; try again later`, {
        'retry-after': '5',
      });
    }
    for (const victim of victims) ending.add(victim);
    starting++;
    startingFor.set(did, (startingFor.get(did) ?? 0) + 1);
    const release = () => {
      starting--;
      const left = (startingFor.get(did) ?? 1) - 1;
      if (left > 0) startingFor.set(did, left);
      else startingFor.delete(did);
    };
    await Promise.all(
      victims.map((victim) =>
        victim.end(victim.peerDid === did ? `its client opened more than ${limits.maxChildrenPerClient} MCP sessions` : `the gateway runs at most ${limits.maxChildren} MCP sessions: this one made room`).finally(() => ending.delete(victim)),
      ),
    );
    let session: StdioSession;
    try {
      session = await StdioSession.start(did, command, log, forget);
    } catch (err) {
      info.report('upstream_error', 'spawn_failed');
      log(`cannot start the MCP server ${logText(shown(command))}: ${logText(describeError(err))}`);
      return jsonRpcErrorResponse(502, id, -32603, 'Bad gateway: the MCP server process cannot be started');
    } finally {
      release();
    }
    live.add(session);
    const response = await session.handle(request, parsedBody);
    const mcpSessionId = session.mcpSessionId;
    if (mcpSessionId === undefined) await session.end('its initialize request was refused');
    else byId.set(mcpSessionId, session);
    return response;
  }

  return {
    description: shown(command),

    async check() {
      // One child, one initialize: the command exists, starts, and speaks MCP.
      const transport = new StdioClientTransport({
        command: command.command,
        args: [...command.args],
        env: { ...getDefaultEnvironment(), ...command.env },
        stderr: 'pipe',
        maxBufferSize: command.maxLineBytes,
      });
      let stderr = '';
      (transport.stderr as Readable).setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
      const client = new Client({ name: 'pqc-mcp-gateway-check', version: '1.0.0' });
      const timeout = options.checkTimeoutMs ?? 15_000;
      try {
        await client.connect(transport, { timeout });
      } catch (err) {
        const last = stderr.trim().split('\n').at(-1);
        throw new Error(
          `the MCP server command ${shown(command)} does not answer initialize (${logText(describeError(err))})${last ? `; its last stderr line: ${logText(last)}` : ''}`,
          { cause: err },
        );
      } finally {
        await client.close().catch(() => {});
      }
    },

    async serve(request: Request, parsedBody: unknown, context: PQCRequestContext, info: ForwardInfo): Promise<Response> {
      if (closed) return jsonRpcErrorResponse(503, requestIdOf(parsedBody), TRANSPORT_ERROR, 'pqc-mcp gateway: stopping');
      const mcpSessionId = request.headers.get(MCP_SESSION_HEADER);
      if (mcpSessionId !== null) {
        const session = byId.get(mcpSessionId);
        // Core refused a session owned by another client already (§9); checked again here, where the child lives.
        if (!session || session.ended || session.peerDid !== context.peerDid) {
          return jsonRpcErrorResponse(404, requestIdOf(parsedBody), SESSION_NOT_FOUND, 'Session not found');
        }
        return session.handle(request, parsedBody);
      }
      if (request.method === 'POST' && isInitialize(parsedBody)) return open(request, parsedBody, context, info);
      return jsonRpcErrorResponse(400, requestIdOf(parsedBody), TRANSPORT_ERROR, 'Bad Request: Mcp-Session-Id header is required');
    },

    async close() {
      closed = true;
      clearInterval(sweep);
      await Promise.all([...live].map((s) => s.end('the gateway is stopping')));
    },
  };
}
