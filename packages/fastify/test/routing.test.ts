/**
 * The routing fuzz of the test kit on Fastify: the MCP route at the endpoint, the plugin at the root or inside a plugin
 * registered under `prefix: '/api'`, with Fastify's default router options and with the loose ones.
 */
import type { AddressInfo } from 'node:net';
import { runRoutingFuzz, seededIdentity, type HandlerRun } from '@pqc-mcp/test-kit';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { pqcPlugin, type PQCFastifyOptions } from '../src/index.js';

const SERVER = seededIdentity(42);

/** POST, GET and DELETE (and so HEAD) of `url` to the MCP handler, which records the run. */
function mcpRoute(app: FastifyInstance, url: string, runs: HandlerRun[]): void {
  app.route({
    method: ['POST', 'GET', 'DELETE'],
    url,
    handler: async (request) => {
      runs.push({ target: request.raw.url ?? '', method: request.method, verified: request.pqc !== undefined });
      return { ran: true };
    },
  });
}

/** Where the plugin and the route are. `pqc` is undefined in the control run. */
type Mount = (app: FastifyInstance, pqc: PQCFastifyOptions | undefined, runs: HandlerRun[]) => Promise<void>;

const MOUNTS: Array<[name: string, endpoints: string[], mount: Mount]> = [
  [
    'plugin and route /mcp at the root',
    ['/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      mcpRoute(app, '/mcp', runs);
    },
  ],
  [
    'plugin at the root, route /api/mcp',
    ['/mcp', '/api/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      mcpRoute(app, '/api/mcp', runs);
    },
  ],
  [
    "plugin and route /mcp inside a plugin under prefix '/api'",
    ['/mcp', '/api/mcp'],
    async (app, pqc, runs) => {
      await app.register(
        async (sub) => {
          if (pqc) await sub.register(pqcPlugin, pqc);
          mcpRoute(sub, '/mcp', runs);
        },
        { prefix: '/api' },
      );
    },
  ],
  [
    "plugin at the root, route /mcp inside a plugin under prefix '/api'",
    ['/mcp', '/api/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      await app.register(async (sub) => mcpRoute(sub, '/mcp', runs), { prefix: '/api' });
    },
  ],
  // Routes whose pattern does not spell the endpoint but match it: what is protected follows the path received too.
  [
    "plugin at the root, a wildcard route '/*'",
    ['/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      mcpRoute(app, '/*', runs);
    },
  ],
  [
    "plugin at the root, a parametric route '/:name'",
    ['/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      mcpRoute(app, '/:name', runs);
    },
  ],
  [
    "plugin at the root, a parametric route whose regular expression holds a slash, '/:p(^[a-z/]+$)'",
    ['/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      mcpRoute(app, '/:p(^[a-z/]+$)', runs);
    },
  ],
  [
    "plugin at the root, a route '/mc*' and one '/api/:name' under it",
    ['/mcp', '/api/mcp'],
    async (app, pqc, runs) => {
      if (pqc) await app.register(pqcPlugin, pqc);
      mcpRoute(app, '/mc*', runs);
      mcpRoute(app, '/api/:name', runs);
    },
  ],
];

/** Every loosening of Fastify 5's router (`routerOptions`; its type, from find-my-way, lacks `useSemicolonDelimiter`). */
const LOOSE = { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, caseSensitive: false, useSemicolonDelimiter: true };

const ROUTERS: Array<[name: string, options: FastifyServerOptions]> = [
  ['default router', {}],
  ['loose router', { routerOptions: LOOSE }],
];

test('the loose router options take effect', async () => {
  const app = Fastify({ routerOptions: LOOSE });
  mcpRoute(app, '/mcp', []);
  for (const url of ['/mcp/', '//mcp', '/MCP', '/mcp;x']) expect({ url, status: (await app.inject({ method: 'GET', url })).statusCode }).toEqual({ url, status: 200 });
  await app.close();
});

for (const [routerName, options] of ROUTERS) {
  for (const [name, endpoints, mount] of MOUNTS) {
    for (const endpoint of endpoints) {
      runRoutingFuzz(`Fastify, ${routerName}, ${name}, endpoint ${endpoint}`, async ({ pqc }) => {
        const runs: HandlerRun[] = [];
        const app = Fastify(options);
        await mount(app, pqc ? { identity: SERVER, endpoint } : undefined, runs);
        await app.listen({ port: 0, host: '127.0.0.1' });
        return { port: (app.server.address() as AddressInfo).port, handlerRuns: runs, close: () => app.close() };
      }, { controlKey: `${routerName}, ${name}` });
    }
  }
}
