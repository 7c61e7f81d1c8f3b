/**
 * @pqc-mcp/hono on Node (`src/node.ts`, what `@pqc-mcp/hono` resolves to under Node): ML-DSA off the event loop by
 * default, as with Express and Fastify. Real HTTP through @hono/node-server, a real PQC session through `pqcFetch`.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { MemorySessionStore, pqcFetch } from '@pqc-mcp/core';
import { sharedWorkerPool } from '@pqc-mcp/core/node';
import { seededIdentity } from '@pqc-mcp/test-kit';
import { Hono } from 'hono';
import { pqc, type PQCVariables } from '../src/node.js';

async function listen(app: Hono<{ Variables: PQCVariables }>): Promise<{ url: string; server: ServerType }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
      resolve({ url: `http://127.0.0.1:${info.port}`, server }),
    );
  });
}

function appWith(options: Parameters<typeof pqc>[0]): Hono<{ Variables: PQCVariables }> {
  const app = new Hono<{ Variables: PQCVariables }>();
  app.use('*', pqc(options));
  app.post('/mcp', (c) => c.json({ jsonrpc: '2.0', id: (c.get('pqcBody') as { id: number }).id, result: { ok: true } }));
  return app;
}

async function roundTrip(url: string, serverDid: string): Promise<unknown> {
  const f = pqcFetch({ identity: seededIdentity(2), serverDid });
  const res = await f(`${url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }),
  });
  expect(res.status).toBe(200);
  return res.json();
}

test('by default (cryptoPool "auto"), the server signs and verifies in the shared worker pool', async () => {
  const identity = seededIdentity(1);
  const engine = identity.backend.name === 'node' ? 'node' : 'noble';
  const pool = sharedWorkerPool({ engine });
  const before = pool.stats().completed;
  const { url, server } = await listen(appWith({ identity, store: new MemorySessionStore() }));
  try {
    expect(await roundTrip(url, identity.did)).toEqual({ jsonrpc: '2.0', id: 7, result: { ok: true } });
    // The handshake (sign + verify), the request's verify and the answer's sign: all in the workers.
    expect(pool.stats().completed - before).toBeGreaterThanOrEqual(3);
  } finally {
    server.close();
  }
});

test('cryptoPool: false keeps the crypto on the identity backend; a backend with cryptoPool: true is refused', async () => {
  const identity = seededIdentity(1);
  const engine = identity.backend.name === 'node' ? 'node' : 'noble';
  const pool = sharedWorkerPool({ engine });
  const before = pool.stats().completed;
  const { url, server } = await listen(appWith({ identity, store: new MemorySessionStore(), cryptoPool: false }));
  try {
    await roundTrip(url, identity.did);
    expect(pool.stats().completed - before).toBe(0);
  } finally {
    server.close();
  }
  expect(() => pqc({ identity, backend: identity.backend, cryptoPool: true })).toThrow(/either "backend" or "cryptoPool"/);
});

