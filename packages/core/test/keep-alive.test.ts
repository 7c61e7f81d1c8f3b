/**
 * A request that arrives just as the server's keep-alive timer fires, made deterministic (test-kit's
 * `requestAfterIdle` blocks this thread across the server's idle timeout, so its timers run before it reads the
 * request). With Node's defaults the request is reset; with `applyKeepAliveTimeout` the server's idle timeout is
 * far from the moment a client or proxy that keeps connections longer than Node's 6 s sends it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { requestAfterIdle } from '@pqc-mcp/test-kit';
import { AgentIdentity, createPQCHandler } from '../src/index.js';
import { applyKeepAliveTimeout, KEEP_ALIVE_TIMEOUT_MS, nodeRequestTarget, sendWebResponse, toWebRequest } from '../src/node/index.js';

const identity = AgentIdentity.fromSeed(new Uint8Array(32).fill(51), { name: 'keep-alive' });

/** Core's handler on node:http (the handshake path answers GET without the application). */
async function listen(configure: (server: Server) => void = () => {}): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const handler = createPQCHandler({ identity });
  const server = createServer((req, res) => {
    handler
      .handle(toWebRequest(req), async () => new Response(null, { status: 204 }), { target: nodeRequestTarget(req) })
      .then((response) => sendWebResponse(res, response))
      .catch(() => res.destroy());
  });
  configure(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const INFO = 'GET /mcp/pqc/handshake HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n';
/** When Node's server closes an idle connection by default: keepAliveTimeout 5 s + keepAliveTimeoutBuffer 1 s. */
const NODE_DEFAULT_IDLE_MS = 6000;

describe('keep-alive: a request on a connection idle as long as Node keeps it by default', () => {
  test('control: with Node defaults, the request that meets the server\'s idle close is reset unanswered', async () => {
    const running = await listen();
    try {
      expect(running.server.keepAliveTimeout).toBe(5000);
      const { first, second, error } = await requestAfterIdle(running.port, INFO, NODE_DEFAULT_IDLE_MS);
      expect(first).toMatch(/^HTTP\/1\.1 200 /);
      expect(first).toMatch(/\r\nKeep-Alive: timeout=5\r\n/i);
      expect({ second, error }).toEqual({ second: '', error: 'ECONNRESET' });
    } finally {
      await running.close();
    }
  }, 20_000);

  test('applyKeepAliveTimeout: the server keeps the connection past that moment and answers the request', async () => {
    const running = await listen((server) => applyKeepAliveTimeout(server));
    try {
      expect(running.server.keepAliveTimeout).toBe(KEEP_ALIVE_TIMEOUT_MS);
      const { first, second, error } = await requestAfterIdle(running.port, INFO, NODE_DEFAULT_IDLE_MS);
      expect(first).toMatch(/\r\nKeep-Alive: timeout=65\r\n/i);
      expect(error).toBeUndefined();
      expect(second).toMatch(/^HTTP\/1\.1 200 /);
      expect(second).toContain('"did"');
    } finally {
      await running.close();
    }
  }, 20_000);

  test('applyKeepAliveTimeout takes a longer timeout, and refuses a nonsensical one', async () => {
    const server = createServer();
    expect(applyKeepAliveTimeout(server, { timeoutMs: 120_000 })).toBe(server);
    expect(server.keepAliveTimeout).toBe(120_000);
    for (const timeoutMs of [0, 999, 1.5e3 + 0.5, Number.NaN, Infinity]) {
      expect(() => applyKeepAliveTimeout(server, { timeoutMs })).toThrow(/option "timeoutMs"/);
    }
    expect(server.keepAliveTimeout).toBe(120_000);
  });
});
