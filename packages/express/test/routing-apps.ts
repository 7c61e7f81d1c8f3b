/**
 * The routing fuzz of the test kit on Express apps (4 or 5): the MCP route at the endpoint, the middleware at the root,
 * inside a Router or a sub-app mounted at /api, or mounted with `app.use('/api', ...)` beside the route `/api/mcp`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runRoutingFuzz, seededIdentity, type FuzzServer, type HandlerRun } from '@pqc-mcp/test-kit';
import type { Application, Request, RequestHandler, Response, Router } from 'express';
import { pqcMiddleware } from '../src/index.js';

type ExpressModule = typeof import('express');

const SERVER = seededIdentity(41);

/** The MCP route handler: records the run and whether `pqcMiddleware` verified the request. */
function mcpHandler(runs: HandlerRun[]): RequestHandler {
  return (req: Request, res: Response) => {
    runs.push({ target: req.originalUrl, method: req.method, verified: req.pqc !== undefined });
    res.json({ ran: true });
  };
}

/** POST, GET and DELETE (and so HEAD) of `path` to the handler. */
function mcpRoute(app: Application | Router, path: string, runs: HandlerRun[]): void {
  app.route(path).post(mcpHandler(runs)).get(mcpHandler(runs)).delete(mcpHandler(runs));
}

/** Where the middleware and the route are. `pqc` is undefined in the control run. */
type Mount = (express: ExpressModule, app: Application, pqc: RequestHandler | undefined, runs: HandlerRun[]) => void;

const MOUNTS: Array<[name: string, endpoints: string[], mount: Mount]> = [
  [
    'middleware and route /mcp at the root',
    ['/mcp'],
    (_express, app, pqc, runs) => {
      if (pqc) app.use(pqc);
      mcpRoute(app, '/mcp', runs);
    },
  ],
  [
    'middleware at the root, route /api/mcp',
    ['/mcp', '/api/mcp'],
    (_express, app, pqc, runs) => {
      if (pqc) app.use(pqc);
      mcpRoute(app, '/api/mcp', runs);
    },
  ],
  [
    'Router at /api, middleware inside it',
    ['/mcp', '/api/mcp'],
    (express, app, pqc, runs) => {
      const router = express.Router();
      if (pqc) router.use(pqc);
      mcpRoute(router, '/mcp', runs);
      app.use('/api', router);
    },
  ],
  [
    "app.use('/api', pqcMiddleware()), route /api/mcp",
    ['/mcp', '/api/mcp'],
    (_express, app, pqc, runs) => {
      if (pqc) app.use('/api', pqc);
      mcpRoute(app, '/api/mcp', runs);
    },
  ],
  [
    'sub-app at /api, middleware inside it',
    ['/mcp', '/api/mcp'],
    (express, app, pqc, runs) => {
      const sub = express();
      if (pqc) sub.use(pqc);
      mcpRoute(sub, '/mcp', runs);
      app.use('/api', sub);
    },
  ],
];

async function listen(app: Application, runs: HandlerRun[]): Promise<FuzzServer> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    handlerRuns: runs,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Runs the fuzz on every mount, with the endpoint option at its default and as the full path. */
export function expressRoutingFuzz(label: string, express: ExpressModule): void {
  for (const [name, endpoints, mount] of MOUNTS) {
    for (const endpoint of endpoints) {
      runRoutingFuzz(`${label}, ${name}, endpoint ${endpoint}`, async ({ pqc }) => {
        const runs: HandlerRun[] = [];
        const app = express();
        mount(express, app, pqc ? pqcMiddleware({ identity: SERVER, endpoint }) : undefined, runs);
        return listen(app, runs);
      }, { controlKey: `${label}, ${name}` });
    }
  }
}
