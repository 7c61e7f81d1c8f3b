/** JSON-RPC errors of MCP calls, with a machine-readable `reason` (PQC failures stay core's `PQCTransportError`s). */

/** Machine-readable names of the JSON-RPC and MCP error codes, and of the SDK's own failures. */
export type MCPErrorReason =
  | 'parse_error'
  | 'invalid_request'
  | 'method_not_found'
  | 'invalid_params'
  | 'internal_error'
  | 'connection_closed'
  | 'request_timeout'
  | 'url_elicitation_required'
  | 'server_error';

const REASONS: ReadonlyMap<number | string, MCPErrorReason> = new Map<number | string, MCPErrorReason>([
  [-32700, 'parse_error'],
  [-32600, 'invalid_request'],
  [-32601, 'method_not_found'],
  [-32602, 'invalid_params'],
  [-32603, 'internal_error'],
  [-32042, 'url_elicitation_required'],
  ['CONNECTION_CLOSED', 'connection_closed'],
  ['REQUEST_TIMEOUT', 'request_timeout'],
]);

/** The reason name of a JSON-RPC error code or an SDK error code (`server_error` for any other). */
export function mcpErrorReason(code: number | string): MCPErrorReason {
  return REASONS.get(code) ?? 'server_error';
}

/**
 * A JSON-RPC error answered by the MCP server (verified: its signature held) to a call, or raised by the MCP SDK
 * client itself (a timeout, a closed connection). Failures of the PQC layer are never this class: they are
 * `PQCTransportError`s of `@pqc-mcp/core` with a `reason`.
 */
export class MCPToolError extends Error {
  /** The JSON-RPC error code (a number), or the SDK's code (a string such as `REQUEST_TIMEOUT`). */
  readonly code: number | string;
  readonly data: unknown;
  /** Machine-readable name of `code`. */
  readonly reason: MCPErrorReason;
  /** The tool called, for `callTool`. */
  readonly tool: string | undefined;

  constructor(code: number | string, message: string, data?: unknown, options: { tool?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MCPToolError';
    this.code = code;
    this.data = data;
    this.reason = mcpErrorReason(code);
    this.tool = options.tool;
  }
}
