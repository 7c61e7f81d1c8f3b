/**
 * The test kit's conformance suite (docs/PROTOCOL.md §3-§6 over HTTP) and hostile suite (the attacks, as real bytes
 * over real sockets) against the real gateway binary in front of an unmodified MCP SDK app on HTTP. The upstream runs
 * in this process, so the suites also check that nothing rejected ever reaches it and that it never sees `_pqc`.
 */
import { CONFORMANCE_SERVER_IDENTITY, runConformanceSuite, runHostileSuite, type StartServer } from '@pqc-mcp/test-kit';
import { createMcpApp } from '../../../examples/shared/tools.js';
import { createTestMcpApp, gatewayFlags, startGatewayProcess, startPlainUpstream, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

let runs = 0;
const startGateway: StartServer = async ({ json, pqc, sdk }) => {
  const identityFile = tmp.path(`server-${runs++}.json`);
  await pqc.identity.save(identityFile);
  // The examples' SDK v2 app (stateless, both eras), or the kit's stateful 1.x app.
  const v2 = sdk === '1.x' ? undefined : createMcpApp({ responseMode: json ? 'json' : 'auto' });
  const upstream = await startPlainUpstream(v2 ? (request, parsedBody) => v2.fetch(request, { parsedBody }) : createTestMcpApp({ json }));
  const gateway = await startGatewayProcess(['--upstream', upstream.url, '--listen', '127.0.0.1:0', '--identity', identityFile, ...gatewayFlags(pqc)]);
  return {
    url: gateway.url,
    seen: upstream.seen,
    close: async () => {
      await gateway.stop('SIGTERM');
      await upstream.close();
      await v2?.close();
    },
  };
};

test('the suites start the gateway with their own server identity', () => {
  expect(CONFORMANCE_SERVER_IDENTITY.did).toMatch(/^did:pqaid:/);
});

// An HTTP upstream learns the caller from the gateway's PQC-Peer-DID header, not as authInfo: whoami is anonymous.
runConformanceSuite('pqc-mcp gateway (binary, HTTP upstream)', startGateway, { expiryTtlSec: 4, callerReachesTools: false });
runHostileSuite('pqc-mcp gateway (binary, HTTP upstream)', startGateway, { sharedStore: false });
