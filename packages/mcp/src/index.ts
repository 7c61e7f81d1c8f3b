/**
 * @pqc-mcp/mcp: `PQCMCPClient` and `PQCMCPServer`, post-quantum (ML-DSA) signed MCP over the official MCP SDK.
 * The protocol lives in `@pqc-mcp/core`; its errors and identities are re-exported here for convenience.
 */
export { PQCMCPClient, type CallOptions, type PQCMCPClientOptions } from './client.js';
export {
  PQCMCPServer,
  toCallToolResult,
  type JsonSchemaObject,
  type PQCMCPServerOptions,
  type RunOptions,
  type RunningServer,
  type ToolConfig,
  type ToolContext,
  type ToolHandler,
  type ToolInputSchema,
} from './server.js';
export { MCPToolError, mcpErrorReason, type MCPErrorReason } from './errors.js';
export {
  AgentIdentity,
  AuditLog,
  HandshakeError,
  MemorySessionStore,
  PQCTransportError,
  PeerNotAuthenticatedError,
  ReplayAttackError,
  SessionExpiredError,
  SignatureVerificationError,
  pqcFetch,
  type AuditEntry,
  type FetchLike,
  type PQCFetch,
  type PQCReason,
  type PQCRequestContext,
  type PQCServerOptions,
  type PQCSession,
  type Profile,
} from '@pqc-mcp/core';
