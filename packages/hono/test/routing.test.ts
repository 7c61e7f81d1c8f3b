/**
 * The routing fuzz of the test kit on Hono served by @hono/node-server: the MCP route at the endpoint, the middleware at
 * the root, under `basePath('/api')` or in a sub-app mounted with `app.route('/api', sub)`; strict and `strict: false`.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type HttpBindings } from '@hono/node-server';
import { runRoutingFuzz, seededIdentity, type FuzzServer, type HandlerRun } from '@pqc-mcp/test-kit';
import { Hono, type MiddlewareHandler } from 'hono';
import { pqc as pqcMiddleware, type PQCVariables } from '../src/index.js';

type Env = { Bindings: HttpBindings; Variables: PQCVariables };
type App = Hono<Env, Record<string, never>, string>;

const SERVER = seededIdentity(43);

/** POST, GET and DELETE (and so HEAD) of `path` to the MCP handler, which records the run. */
function mcpRoute(app: App, path: string, runs: HandlerRun[]): void {
  app.on(['POST', 'GET', 'DELETE'], path, (c) => {
    runs.push({ target: c.env.incoming.url ?? '', method: c.req.method, verified: c.get('pqc') !== undefined });
    return c.json({ ran: true });
  });
}

/** Builds the app served; `pqc` is undefined in the control run. */
type Mount = (hono: () => App, pqc: MiddlewareHandler<Env> | undefined, runs: HandlerRun[]) => App;

const MOUNTS: Array<[name: string, endpoints: string[], mount: Mount]> = [
  [
    'middleware and route /mcp at the root',
    ['/mcp'],
    (hono, pqc, runs) => {
      const app = hono();
      if (pqc) app.use('*', pqc);
      mcpRoute(app, '/mcp', runs);
      return app;
    },
  ],
  [
    'middleware at the root, route /api/mcp',
    ['/mcp', '/api/mcp'],
    (hono, pqc, runs) => {
      const app = hono();
      if (pqc) app.use('*', pqc);
      mcpRoute(app, '/api/mcp', runs);
      return app;
    },
  ],
  [
    "basePath('/api'), middleware and route /mcp",
    ['/mcp', '/api/mcp'],
    (hono, pqc, runs) => {
      const app = hono().basePath('/api') as App;
      if (pqc) app.use('*', pqc);
      mcpRoute(app, '/mcp', runs);
      return app;
    },
  ],
  [
    "route('/api', sub), middleware and route /mcp in the sub-app",
    ['/mcp', '/api/mcp'],
    (hono, pqc, runs) => {
      const sub = hono();
      if (pqc) sub.use('*', pqc);
      mcpRoute(sub, '/mcp', runs);
      return hono().route('/api', sub);
    },
  ],
  [
    "route('/api', sub), middleware at the root, route /mcp in the sub-app",
    ['/mcp', '/api/mcp'],
    (hono, pqc, runs) => {
      const sub = hono();
      mcpRoute(sub, '/mcp', runs);
      const app = hono();
      if (pqc) app.use('*', pqc);
      return app.route('/api', sub);
    },
  ],
];

async function listen(app: App, runs: HandlerRun[]): Promise<FuzzServer> {
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server)) as Server;
  });
  return {
    port: (server.address() as AddressInfo).port,
    handlerRuns: runs,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

for (const strict of [true, false]) {
  for (const [name, endpoints, mount] of MOUNTS) {
    for (const endpoint of endpoints) {
      runRoutingFuzz(`Hono, strict: ${strict}, ${name}, endpoint ${endpoint}`, async ({ pqc }) => {
        const runs: HandlerRun[] = [];
        const hono = (): App => new Hono<Env>({ strict });
        const middleware = pqc ? (pqcMiddleware({ identity: SERVER, endpoint }) as unknown as MiddlewareHandler<Env>) : undefined;
        return listen(mount(hono, middleware, runs), runs);
      }, { controlKey: `strict: ${strict}, ${name}` });
    }
  }
}
