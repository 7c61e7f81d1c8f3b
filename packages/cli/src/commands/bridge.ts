/**
 * `pqc-mcp bridge`: a stdio MCP server for MCP hosts that forwards every message to a remote PQC-secured server.
 * A proxy at the transport level: the SDK's `StdioServerTransport` on one side, its `StreamableHTTPClientTransport`
 * over `pqcFetch` on the other, messages piped both ways untouched (tools, resources, prompts, notifications,
 * server-to-client requests). `pqcFetch` does the handshake, signs, verifies against the pinned key and strips.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { PQCTransportError, pqcFetch } from '@pqc-mcp/core';
import { EXIT, didArg, describeError, httpUrl, loadIdentity, parse, required, usage, type Io } from '../util.js';

type Id = string | number;

function requestId(message: JSONRPCMessage): Id | undefined {
  const m = message as { id?: unknown; method?: unknown };
  return typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number') ? m.id : undefined;
}

/** Pins of the remote server shared by `bridge` and `call`. */
export function serverPin(values: { 'server-did'?: string; 'trust-on-first-use'?: boolean }, command: string): { serverDid?: string; trustOnFirstUse?: boolean } {
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

export async function bridge(args: string[], io: Io): Promise<number> {
  const { values } = parse(
    'bridge',
    args,
    {
      server: { type: 'string' },
      identity: { type: 'string' },
      'server-did': { type: 'string' },
      'trust-on-first-use': { type: 'boolean' },
    },
    0,
  );
  const server = httpUrl(required(values.server, '--server', 'bridge'), '--server', 'bridge');
  const identityFile = required(values.identity, '--identity', 'bridge');
  const pin = serverPin(values, 'bridge');
  const identity = await loadIdentity(identityFile, 'bridge', io);
  const log = (message: string) => io.err(`pqc-mcp bridge: ${message}`);

  const fetch = pqcFetch({ identity, ...pin });
  const remote = new StreamableHTTPClientTransport(server, { fetch });
  const local = new StdioServerTransport();
  const initializeIds = new Set<Id>();
  let announcedServer = false;
  /** Messages wait for the initialize exchange (it creates the MCP session the others need). */
  let initialized: Promise<void> = Promise.resolve();

  const reported = new WeakSet<object>();

  const replyError = (id: Id, error: unknown) => {
    const detail = describeError(error);
    const reason = error instanceof PQCTransportError ? ` (${error.reason})` : '';
    local
      .send({ jsonrpc: '2.0', id, error: { code: -32000, message: `pqc-mcp bridge: the remote server failed${reason}: ${detail}` } })
      .catch(() => {});
  };

  local.onmessage = (message) => {
    const id = requestId(message);
    const isInitialize = (message as { method?: unknown }).method === 'initialize';
    if (isInitialize && id !== undefined) initializeIds.add(id);
    const send = async () => {
      if (!isInitialize) await initialized;
      await remote.send(message);
      if (!announcedServer && fetch.serverDid) {
        announcedServer = true;
        log(`connected to ${server.href} as ${identity.did}; server ${fetch.serverDid}${pin.trustOnFirstUse ? ' (trusted on first use)' : ''}`);
      }
    };
    const sent = send().catch((err: unknown) => {
      if (typeof err === 'object' && err !== null) reported.add(err);
      log(`${(message as { method?: string }).method ?? 'message'} failed: ${describeError(err)}`);
      if (id !== undefined) replyError(id, err);
    });
    if (isInitialize) initialized = sent;
  };

  remote.onmessage = (message) => {
    const m = message as { id?: Id; result?: { protocolVersion?: unknown }; error?: { message?: unknown; data?: { pqc?: unknown } } };
    // pqcFetch answers a request whose answer failed verification with a local -32010 error: say so on stderr too.
    if (m.error && typeof m.error.data?.pqc === 'string') log(`request ${JSON.stringify(m.id ?? null)} refused: ${String(m.error.message)}`);
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

  return new Promise<number>((resolve) => {
    let closing = false;
    const close = async (why: string) => {
      if (closing) return;
      closing = true;
      log(`${why}, closing`);
      // End the remote MCP session (a signed DELETE), but never hang the host's shutdown on it.
      await Promise.race([remote.terminateSession().catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
      await remote.close().catch(() => {});
      await local.close().catch(() => {});
      resolve(EXIT.OK);
    };
    process.stdin.once('end', () => void close('stdin closed'));
    process.stdin.once('close', () => void close('stdin closed'));
    process.once('SIGINT', () => void close('SIGINT'));
    process.once('SIGTERM', () => void close('SIGTERM'));
  });
}
