/** `pqc-mcp call`: one verified tool call from the shell. */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { PQCTransportError, pqcFetch } from '@pqc-mcp/core';
import { EXIT, CliError, describeError, httpUrl, isNetworkError, loadIdentity, parse, required, secondsArg, usage, type Io } from '../util.js';
import { serverPin } from './bridge.js';

interface ContentItem {
  type: string;
  text?: string;
}

export async function call(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    'call',
    args,
    {
      identity: { type: 'string' },
      'server-did': { type: 'string' },
      'trust-on-first-use': { type: 'boolean' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
    },
    3,
  );
  const [urlArg, tool, argsText] = positionals;
  if (urlArg === undefined || tool === undefined) throw usage('URL and TOOL are required', 'call');
  const url = httpUrl(urlArg, 'URL', 'call');
  let toolArgs: Record<string, unknown> = {};
  if (argsText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(argsText);
    } catch (err) {
      throw usage(`JSON-ARGS is not valid JSON (${err instanceof Error ? err.message : String(err)}): ${argsText}`, 'call');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw usage('JSON-ARGS must be a JSON object, e.g. \'{"text":"hi"}\'', 'call');
    toolArgs = parsed as Record<string, unknown>;
  }
  const identityFile = required(values.identity, '--identity', 'call');
  const pin = serverPin(values, 'call');
  const timeoutMs = secondsArg(values.timeout, '--timeout', 'call', 60) * 1000;
  const identity = await loadIdentity(identityFile, 'call', io);

  const fetch = pqcFetch({ identity, ...pin });
  const transport = new StreamableHTTPClientTransport(url, { fetch });
  const client = new Client({ name: 'pqc-mcp-cli', version: '0.1.0' }, { capabilities: {} });
  const signal = AbortSignal.timeout(timeoutMs);
  let result;
  try {
    await client.connect(transport, { signal, timeout: timeoutMs });
    if (pin.trustOnFirstUse) io.err(`pqc-mcp: trusted ${url.host} on first use: server ${fetch.serverDid}`);
    result = await client.callTool({ name: tool, arguments: toolArgs }, undefined, { signal, timeout: timeoutMs });
  } catch (err) {
    throw callError(err, url, timeoutMs);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
  }

  const content = (Array.isArray(result.content) ? result.content : []) as ContentItem[];
  if (values.json) {
    io.out(JSON.stringify(result, null, 2));
  } else {
    for (const item of content) io.out(item.type === 'text' && typeof item.text === 'string' ? item.text : JSON.stringify(item));
    if (content.length === 0 && result.structuredContent !== undefined) io.out(JSON.stringify(result.structuredContent, null, 2));
  }
  if (result.isError === true) {
    io.err(`pqc-mcp: error: the tool "${tool}" reported an error`);
    return EXIT.FAILED;
  }
  return EXIT.OK;
}

/** Sorts a failure into "refused" (exit 1) and "could not get there" (exit 3). */
function callError(err: unknown, url: URL, timeoutMs: number): CliError {
  if (err instanceof PQCTransportError) return new CliError(`refused (${err.reason}): ${err.message}`, EXIT.FAILED);
  if (err instanceof McpError) {
    if (/timed out/i.test(err.message)) return new CliError(`no answer from ${url.href} within ${timeoutMs / 1000} s`, EXIT.RUNTIME);
    return new CliError(`the server answered with an error: ${err.message}`, EXIT.FAILED);
  }
  if ((err as { name?: string } | null)?.name === 'TimeoutError') return new CliError(`no answer from ${url.href} within ${timeoutMs / 1000} s`, EXIT.RUNTIME);
  if (isNetworkError(err)) return new CliError(`cannot reach ${url.href}: ${describeError(err)}`, EXIT.RUNTIME);
  const status = (err as { code?: unknown } | null)?.code;
  if (typeof status === 'number' && status >= 400) {
    // The SDK's StreamableHTTPError: the HTTP status, and the body (a JSON-RPC error, when there is one).
    const detail = httpErrorDetail(err as Error);
    if (status < 500) return new CliError(`refused by ${url.href} (HTTP ${status}): ${detail}`, EXIT.FAILED);
    return new CliError(`${url.href} answered HTTP ${status}: ${detail}`, EXIT.RUNTIME);
  }
  return new CliError(`call failed: ${describeError(err)}`, EXIT.RUNTIME);
}

/** The JSON-RPC error message inside an SDK HTTP error, else its message. */
function httpErrorDetail(err: Error): string {
  const start = err.message.indexOf('{');
  if (start !== -1) {
    try {
      const body = JSON.parse(err.message.slice(start)) as { error?: { message?: unknown } };
      if (typeof body.error?.message === 'string') return body.error.message;
    } catch {
      // not JSON: the message as it is
    }
  }
  return err.message.replace(/^Streamable HTTP error: /, '');
}
