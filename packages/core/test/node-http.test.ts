import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpApp } from '../../../examples/shared/tools.js';
import { createPQCHandler, pqcAuthInfo, type PQCRequestContext } from '../src/index.js';
import { nodeRequestTarget, sendWebResponse, toWebRequest } from '../src/node/index.js';
import { createWebMcpApp1x, runConformanceSuite, runHostileSuite, runPythonClientSuite, type StartServer } from '@pqc-mcp/test-kit';

// The core alone behind node:http, with the MCP SDK's web-standard handler (v2, or a 1.x app): the reference every
// adapter matches.
const start: StartServer = async ({ json, pqc, sdk }) => {
  const v2 = sdk === '1.x' ? undefined : createMcpApp({ responseMode: json ? 'json' : 'auto' });
  const v1 = sdk === '1.x' ? createWebMcpApp1x({ enableJsonResponse: json }) : undefined;
  const handler = createPQCHandler(pqc);
  const seen: unknown[] = [];
  const contexts: (PQCRequestContext | undefined)[] = [];
  const server = createServer((req, res) => {
    handler
      .handle(
        toWebRequest(req),
        (request, body, context) => {
          seen.push(body);
          contexts.push(context);
          return v2 ? v2.fetch(request, { parsedBody: body, authInfo: pqcAuthInfo(context) }) : v1!(request, body, pqcAuthInfo(context));
        },
        { target: nodeRequestTarget(req) },
      )
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
    contexts,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await v2?.close();
    },
  };
};

runConformanceSuite('core on node:http', start);
runHostileSuite('core on node:http', start, { sharedStore: true });
runPythonClientSuite('core on node:http', start);

describe('sendWebResponse', () => {
  it('writes a JSON body whole, with its own length, even when the app left another length on the response object', async () => {
    const body = { jsonrpc: '2.0', id: 1, result: { text: 'x'.repeat(5000) } };
    const server = createServer((_req, res) => {
      // What @hono/node-server (under the MCP SDK's Node transport) does when it writes the app's shorter answer.
      (res as unknown as { _contentLength: number })._contentLength = 170;
      void sendWebResponse(res, Response.json(body, { headers: { 'x-kept': 'yes' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/`);
      const text = await response.text();
      expect(response.headers.get('content-length')).toBe(String(text.length));
      expect(response.headers.get('x-kept')).toBe('yes');
      expect(JSON.parse(text)).toEqual(body);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
