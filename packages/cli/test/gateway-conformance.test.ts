/**
 * The test kit's conformance suite (docs/PROTOCOL.md §3-§6 over HTTP) and hostile suite (the attacks, as real bytes
 * over real sockets) against the real gateway binary in front of an unmodified MCP SDK app on HTTP. The upstream runs
 * in this process, so the suites also check that nothing rejected ever reaches it and that it never sees `_pqc`.
 */
import { CONFORMANCE_SERVER_IDENTITY, runConformanceSuite, runHostileSuite, type StartServer } from '@pqc-mcp/test-kit';
import { createTestMcpApp, gatewayFlags, startGatewayProcess, startPlainUpstream, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

let runs = 0;
const startGateway: StartServer = async ({ json, pqc }) => {
  const identityFile = tmp.path(`server-${runs++}.json`);
  await pqc.identity.save(identityFile);
  const upstream = await startPlainUpstream(createTestMcpApp({ json }));
  const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', identityFile, ...gatewayFlags(pqc)]);
  return {
    url: gateway.url,
    seen: upstream.seen,
    close: async () => {
      await gateway.stop('SIGTERM');
      await upstream.close();
    },
  };
};

test('the suites start the gateway with their own server identity', () => {
  expect(CONFORMANCE_SERVER_IDENTITY.did).toMatch(/^did:pqaid:/);
});

runConformanceSuite('pqc-mcp gateway (binary, HTTP upstream)', startGateway, { expiringSessionTtlSec: 4 });
runHostileSuite('pqc-mcp gateway (binary, HTTP upstream)', startGateway, { sharedStore: false });
