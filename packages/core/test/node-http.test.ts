import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWebMcpApp } from '../../../examples/shared/tools.js';
import { createPQCHandler } from '../src/index.js';
import { sendWebResponse, toWebRequest } from '../src/node/index.js';
import { runConformanceSuite } from './conformance.js';

// The core alone behind node:http, with the web-standard MCP SDK transport: the reference every adapter matches.
runConformanceSuite('core on node:http', async ({ json, pqc }) => {
  const app = createWebMcpApp({ enableJsonResponse: json });
  const handler = createPQCHandler(pqc);
  const seen: unknown[] = [];
  const server = createServer((req, res) => {
    handler
      .handle(toWebRequest(req), (request, body) => {
        seen.push(body);
        return app(request, body);
      })
      .then((response) => sendWebResponse(res, response))
      .catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
});
