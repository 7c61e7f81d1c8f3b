/**
 * `pqc-mcp bridge`: a stdio MCP server for MCP hosts that forwards every message to a remote PQC-secured server.
 *
 * Profile v2: a proxy at the transport level (the MCP SDK v2's `StdioServerTransport` on one side, its
 * `StreamableHTTPClientTransport` over `pqcFetch` on the other), messages piped both ways untouched: tools,
 * resources, prompts, notifications, server-to-client requests. The host negotiates the MCP version with the remote
 * server through the pipe. `pqcFetch` does the handshake, signs, verifies against the pinned key and strips.
 *
 * Profile v1: a v1 (`pqc-mcp-transport`) peer takes plain JSON-RPC `tools/list` and `tools/call` without
 * `initialize`, so the bridge is the MCP server the host talks to (the SDK's `Server`), and forwards those two.
 */
import { StreamableHTTPClientTransport, type JSONRPCMessage } from '@modelcontextprotocol/client';
import { Server } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { PQCTransportError, type AgentIdentity } from '@pqc-mcp/core';
import { logText } from '../log.js';
import { EXIT, describeError, httpUrl, loadIdentity, parse, required, usage, type Io } from '../util.js';
import { CLIENT_FLAGS, asCallToolResult, clientSetup, v1Request, type ClientSetup } from './client-flags.js';

type Id = string | number;

function requestId(message: JSONRPCMessage): Id | undefined {
  const m = message as { id?: unknown; method?: unknown };
  return typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number') ? m.id : undefined;
}

/** What the bridge needs to run either way. */
interface BridgeContext {
  server: URL;
  identity: AgentIdentity;
  setup: ClientSetup;
  log(message: string): void;
}

/** Resolves once stdin closes or a signal arrives; `close` runs first. */
function untilClosed(log: (message: string) => void, close: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    let closing = false;
    const stop = (why: string) => {
      if (closing) return;
      closing = true;
      log(`${why}, closing`);
      void close().finally(() => resolve(EXIT.OK));
    };
    process.stdin.once('end', () => stop('stdin closed'));
    process.stdin.once('close', () => stop('stdin closed'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** Profile v2: the transport-level pipe. */
async function pipe({ server, identity, setup, log }: BridgeContext): Promise<number> {
  const { fetch, pin } = setup;
  const remote = new StreamableHTTPClientTransport(server, { fetch });
  const local = new StdioServerTransport();
  const initializeIds = new Set<Id>();
  let announced = false;
  /** Messages wait for the initialize exchange (it creates the MCP session the others need). */
  let initialized: Promise<void> = Promise.resolve();
  const reported = new WeakSet<object>();

  const replyError = (id: Id, error: unknown) => {
    const reason = error instanceof PQCTransportError ? ` (${error.reason})` : '';
    const message = `pqc-mcp bridge: the remote server failed${reason}: ${describeError(error)}`;
    local.send({ jsonrpc: '2.0', id, error: { code: -32000, message } } as JSONRPCMessage).catch(() => {});
  };

  local.onmessage = (message) => {
    const id = requestId(message);
    const isInitialize = (message as { method?: unknown }).method === 'initialize';
    if (isInitialize && id !== undefined) initializeIds.add(id);
    const send = async () => {
      if (!isInitialize) await initialized;
      await remote.send(message);
      if (!announced && fetch.serverDid) {
        announced = true;
        log(`connected to ${server.href} as ${identity.did}; server ${fetch.serverDid}${pin.trustOnFirstUse ? ' (trusted on first use)' : ''}`);
      }
    };
    const sent = send().catch((err: unknown) => {
      if (typeof err === 'object' && err !== null) reported.add(err);
      log(`${String((message as { method?: unknown }).method ?? 'message')} failed: ${describeError(err)}`);
      if (id !== undefined) replyError(id, err);
    });
    if (isInitialize) initialized = sent;
  };

  remote.onmessage = (message) => {
    const m = message as { id?: Id; result?: { protocolVersion?: unknown }; error?: { message?: unknown; data?: { pqc?: unknown } } };
    // pqcFetch answers a request whose answer failed verification with a local -32010 error: say so on stderr too.
    if (m.error && typeof m.error.data?.pqc === 'string') log(`request ${logText(JSON.stringify(m.id ?? null), 40)} refused: ${logText(String(m.error.message))}`);
    if (m.id !== undefined && initializeIds.has(m.id) && m.result) {
      initializeIds.delete(m.id);
      // What the SDK Client does after initialize: later requests carry the negotiated MCP-Protocol-Version.
      if (typeof m.result.protocolVersion === 'string') remote.setProtocolVersion(m.result.protocolVersion);
    }
    local.send(message).catch((err: unknown) => log(`cannot write to the host: ${describeError(err)}`));
  };
  // The transport reports an error through onerror and then throws it from send(), where it is logged with the
  // method: onerror only logs what no send() reports (a failed GET stream, a stream ended by a forgery).
  remote.onerror = (err) => {
    setTimeout(() => {
      if (!reported.has(err)) log(describeError(err));
    }, 0);
  };
  local.onerror = (err) => log(`stdin: ${describeError(err)}`);

  await remote.start();
  await local.start();
  log(`ready: forwarding stdio to ${server.href}`);
  return untilClosed(log, async () => {
    // End the remote MCP session and the PQC session (signed DELETEs), but never hang the host's shutdown on them.
    const end = async () => {
      await remote.terminateSession().catch(() => {});
      await fetch.endSession().catch(() => {});
    };
    await Promise.race([end(), new Promise((r) => setTimeout(r, 2000).unref())]);
    await remote.close().catch(() => {});
    await local.close().catch(() => {});
  });
}

/** Profile v1: the bridge is the host's MCP server; `tools/list` and `tools/call` go to the peer as plain JSON-RPC. */
async function v1Server({ server: url, setup, log }: BridgeContext): Promise<number> {
  const server = new Server({ name: 'pqc-mcp-bridge', version: '0.1.0' }, { capabilities: { tools: {} } });
  let nextId = 1;
  const forward = async (method: string, params: Record<string, unknown>) => {
    try {
      return await v1Request(setup.fetch, url, nextId++, method, params);
    } catch (err) {
      log(`${method} failed: ${describeError(err)}`);
      throw err;
    }
  };
  server.setRequestHandler('tools/list', async () => {
    const result = (await forward('tools/list', {})) as { tools?: unknown };
    if (!Array.isArray(result?.tools)) throw new Error('the v1 peer answered tools/list without a list of tools');
    return result as never;
  });
  server.setRequestHandler('tools/call', async (request) => asCallToolResult(await forward('tools/call', { ...request.params })) as never);
  const local = new StdioServerTransport();
  await server.connect(local);
  log(`ready: serving the v1 peer ${url.href} (tools only) over stdio`);
  return untilClosed(log, async () => {
    await server.close().catch(() => {});
  });
}

export async function bridge(args: string[], io: Io): Promise<number> {
  const { values } = parse('bridge', args, { server: { type: 'string' }, ...CLIENT_FLAGS }, 0);
  const server = httpUrl(required(values.server, '--server', 'bridge'), '--server', 'bridge');
  const identityFile = required(values.identity, '--identity', 'bridge');
  if (values['mcp-protocol'] !== undefined) {
    throw usage('--mcp-protocol is for `call`: the bridge pipes the host\'s own MCP messages, so the host negotiates the version itself', 'bridge');
  }
  const identity = await loadIdentity(identityFile, 'bridge', io);
  const setup = clientSetup(values, identity, 'bridge', (line) => io.err(line));
  const context: BridgeContext = { server, identity, setup, log: (message) => io.err(`pqc-mcp bridge: ${message}`) };
  return setup.profile === 1 ? v1Server(context) : pipe(context);
}
