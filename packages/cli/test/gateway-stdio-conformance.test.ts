/**
 * The test kit's conformance and hostile suites against the real gateway binary running the MCP project's reference
 * server, `@modelcontextprotocol/server-everything` from npm, as a stdio upstream (`--upstream-command`): one
 * process per MCP session. The suites call its own tools (`echo(message)`, `get-sum(a, b)`). The upstream is in
 * other processes, so the suites check the wire only (no `seen`). The stdio gateway always answers POSTs with SSE
 * (the SDK transport's default): the suites' JSON variant runs on SSE too.
 */
import { runConformanceSuite, runHostileSuite, type StartServer } from '@pqc-mcp/test-kit';
import { EVERYTHING_COMMAND, EVERYTHING_TOOLS, gatewayFlags, startGatewayProcess, tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

let runs = 0;
const startGateway: StartServer = async ({ pqc }) => {
  const identityFile = tmp.path(`server-${runs++}.json`);
  await pqc.identity.save(identityFile);
  const gateway = await startGatewayProcess([
    '--upstream-command', EVERYTHING_COMMAND, '--listen', '127.0.0.1:0', '--identity', identityFile, '--max-children', '64', ...gatewayFlags(pqc),
  ]);
  return { url: gateway.url, close: async () => void (await gateway.stop('SIGTERM')) };
};

jest.setTimeout(60_000);
// server-everything is a stateful server of the 1.x SDK's era (Mcp-Session-Id, up to 2025-11-25): the suites' '1.x' cases.
const options = { tools: EVERYTHING_TOOLS, sdks: ['1.x'] as const };
runConformanceSuite('pqc-mcp gateway (binary, stdio upstream: server-everything)', startGateway, { ...options, expiryTtlSec: 10 });
runHostileSuite('pqc-mcp gateway (binary, stdio upstream: server-everything)', startGateway, { ...options, sharedStore: false });
