/**
 * @pqc-mcp/mcp: `PQCMCPClient` and `PQCMCPServer`, post-quantum (ML-DSA) signed MCP on the official MCP SDK v2, and
 * `withPqc`, the PQC client as an SDK client middleware. The protocol lives in `@pqc-mcp/core`.
 */
export { PQCMCPClient, type CallOptions, type PQCMCPClientOptions } from './client.js';
export {
  PQCMCPServer,
  toCallToolResult,
  type ArgsOf,
  type JsonSchemaObject,
  type PQCMCPServerOptions,
  type RunOptions,
  type RunningServer,
  type ToolConfig,
  type ToolContext,
  type ToolHandler,
  type ToolInputSchema,
} from './server.js';
export { withPqc } from './with-pqc.js';
export {
  ToolPinning,
  type ToolApproval,
  type ToolChange,
  type ToolListSource,
  type ToolPinningOptions,
  type ToolsChangedEvent,
  type ToolsChangedHandler,
  type ToolVersion,
} from './tool-pinning.js';
export { pinTools, type PinToolsOptions, type PinnedTools } from './pin-tools.js';
export { MCPToolError, mcpErrorReason, type MCPErrorReason } from './errors.js';
// The same re-exports as the adapters: the identity every client and server needs.
export { AgentIdentity, type PQCRequestContext } from '@pqc-mcp/core';
// The errors of the Python package's API, by the same names (each with a machine-readable `reason`).
export {
  HandshakeError,
  PeerNotAuthenticatedError,
  PQCTransportError,
  ReplayAttackError,
  SessionExpiredError,
  SignatureVerificationError,
  type PQCReason,
} from '@pqc-mcp/core';
// What tool pinning needs, from core: the stores and the error.
export { MemoryToolPinStore, ToolPinError, type ToolDefinition, type ToolPin, type ToolPinReason, type ToolPinStore } from '@pqc-mcp/core';
export { FileToolPinStore } from '@pqc-mcp/core/node';
