/** The `--help` texts of the top level and of every command. */

const EXIT_CODES = `Exit codes:
  0  success (verify: the message is valid)
  1  verification failed or refused (bad signature, PQC rejection, wrong server, tool error)
  2  usage error (wrong or missing argument, unreadable or invalid file)
  3  runtime error (server or upstream unreachable, port in use, unexpected failure)`;

export const TOP_HELP = `pqc-mcp: post-quantum (ML-DSA, FIPS 204) signatures for MCP traffic, from the command line

Usage: pqc-mcp <command> [options]

Commands:
  keygen     create an identity file (ML-DSA key seed, DID)
  identity   show an identity file's DID, algorithm and public key (never the seed)
  rotate     replace a server's key: a new identity and the rotation record signed by the current key
  gateway    a reverse proxy that puts PQC in front of any MCP server (Streamable HTTP)
  bridge     a stdio MCP server for MCP hosts that forwards everything to a remote PQC server
  call       call one tool on a PQC server and print the verified result
  verify     verify a captured signed message
  audit      verify an audit file (hash chain, signed checkpoints, kept messages) offline

Run 'pqc-mcp <command> --help' for a command's options.

Options:
  -h, --help     show this help
  -v, --version  show the version

${EXIT_CODES}`;

export const HELP: Record<string, string> = {
  keygen: `Usage: pqc-mcp keygen --out FILE [--algorithm ML-DSA-65] [--name NAME] [--force]

Creates a new identity file (a JSON Web Key with the 32-byte ML-DSA seed, docs/PROTOCOL.md §1), mode 0600.
Prints the new DID on stdout.

Options:
  --out FILE          where to write the identity (required)
  --algorithm ALG     ML-DSA-44, ML-DSA-65 (default) or ML-DSA-87
  --name NAME         a human-readable name stored in the file (default: agent)
  --force             overwrite FILE if it exists (refused otherwise)
  -h, --help          show this help

${EXIT_CODES}`,

  identity: `Usage: pqc-mcp identity FILE [--json]

Shows the DID, algorithm, name and public JWK of an identity file (private or public). Never prints the seed.

Options:
  --json              print one JSON object {did, algorithm, name, public_jwk}
  -h, --help          show this help

${EXIT_CODES}`,

  rotate: `Usage: pqc-mcp rotate --identity FILE --out NEW-FILE --record CHAIN-FILE [options]

Replaces a server's key without breaking clients pinned to it (docs/PROTOCOL.md §11). Reads the current identity,
creates the new one (mode 0600) and a rotation record naming it, signed by the current key, and writes the chain
(the records of --previous, then the new one) as a JSON array. Prints the new DID on stdout.

Serve the chain with the new identity (gateway: --identity NEW-FILE --rotations CHAIN-FILE; a server: its
\`rotations\` option): a client pinned to the old DID is answered by the new key with the chain, checks every record
and re-pins. The old identity is not needed to serve any more: keep it offline, or destroy it.

Options:
  --identity FILE       the current identity file (required)
  --out FILE            where to write the new identity (required; refused if it exists, unless --force)
  --record FILE         where to write the rotation chain (required; refused if it exists, unless --force)
  --previous FILE       the chain written by the last rotation (its last record names --identity): kept in front
  --algorithm ALG       the new key's algorithm (default: the current one's)
  --name NAME           the new identity's name (default: the current one's)
  --effective-at TIME   when the new key takes effect, RFC 3339 (default: now)
  --overlap DURATION    how long clients pinned to the old key may still follow the record after TIME:
                        7d (default), 12h, 30m, or seconds
  --force               overwrite --out and --record if they exist
  -h, --help            show this help

${EXIT_CODES}`,

  gateway: `Usage: pqc-mcp gateway (--upstream URL | --upstream-command "CMD ARGS") --listen HOST:PORT --identity FILE [options]

A reverse proxy that terminates PQC in front of an unmodified MCP server: an HTTP one (--upstream), or a stdio
one it runs itself (--upstream-command, one process per MCP session). It answers pqc/handshake, verifies every
request, forwards the verified request (the body core verified, the target the client signed, an allow-list of
MCP headers, the verified client DID in PQC-Peer-DID, X-Forwarded-* of its own), and signs every message that
comes back (JSON and SSE, streamed as it comes). The upstream is checked at start: exit 3 when it does not answer.

Prints 'READY <url> <gateway DID>' on stdout once listening (<url> is the gateway's MCP endpoint), then one
log line per request on stderr: time, HTTP method, path, verified JSON-RPC method, verified peer DID, verdict,
status, latency (every value escaped to printable ASCII). SIGINT or SIGTERM stops it gracefully (open streams
are closed, requests in flight get 5 s).

Options:
  --upstream URL          the MCP server's endpoint, e.g. http://127.0.0.1:3000/mcp
  --upstream-command CMD  run this stdio MCP server instead, e.g. "npx -y @modelcontextprotocol/server-everything"
                          (split like a shell would, without one: quotes and backslashes only)
  --listen HOST:PORT      where to listen, e.g. 127.0.0.1:8443 or [::1]:8443; port 0 picks one (required)
  --identity FILE         the gateway's identity file (required)
  --path PATH             the gateway's MCP endpoint path (default: the upstream URL's path, or /mcp)
  --allow DID             only this client may open a session; repeat (or comma-separate) for several
                          (default: any client with a valid handshake)
  --rotations FILE        the key rotation chain written by 'pqc-mcp rotate' (its last record names --identity):
                          served at GET pqc/handshake, and clients pinned to a retired key follow it
  --profiles LIST         accepted protocol profiles: v2 (default) or v2,v1 (also pqc-mcp-transport clients)
  --redis URL             keep sessions in Redis (redis://host:6379), for several gateway instances
  --audit FILE            append the audit trail (docs/PROTOCOL.md §8) to FILE as JSON lines
  --json-log              log lines on stderr as JSON
  --session-ttl SEC       session lifetime (default 3600)
  --max-body BYTES        largest request body, and largest upstream answer or event (default 4194304)
  --max-batch N           most messages in one batch (default 50)
  --clock-skew SEC        allowed clock difference with clients (default 300)
  --request-timeout SEC   longest time a client may take to send a request, headers and body (default 30);
                          answers (SSE streams included) are never cut by it
  --keep-alive-timeout SEC  how long an idle kept-alive connection stays open (default 65: longer than clients' and proxies')

stdio upstream options (--upstream-command):
  --upstream-env NAME     pass this variable of the gateway's environment to the server (repeat; by default
                          it gets only HOME, LOGNAME, PATH, SHELL, TERM, USER)
  --max-children N        MCP sessions (server processes) in all (default 16); one more ends the least recently used
                          idle one (503 only while all are busy)
  --max-children-per-client N  per client DID (default 4); one more ends that client's least recently used one
  --child-idle SEC        stop a session's process after SEC seconds without a request (default 1800)
  -h, --help              show this help

${EXIT_CODES}`,

  bridge: `Usage: pqc-mcp bridge --server URL --identity FILE (--server-did DID | --trust-on-first-use) [options]

A stdio MCP server for MCP hosts (desktop apps, IDE agents): every message the host writes on stdin is signed
and sent to a remote PQC-secured MCP server, and every message it sends back is verified against the pinned
server key before it is written to stdout. Tools, resources, prompts, notifications and server requests all
pass; the host negotiates the MCP version with the remote server itself. Diagnostics go to stderr; stdout
carries only MCP messages.

Options:
  --server URL          the remote server's MCP endpoint, e.g. https://mcp.example.com/mcp (required)
  --identity FILE       this client's identity file (required)
  --server-did DID      the server's DID: any other server is refused
  --trust-on-first-use  accept whichever server answers the first handshake, and pin it (instead of --server-did)
  --profile v2|v1       v2 (default), or v1 for a pqc-mcp-transport (v1) peer: tools only, no initialize
  --handshake-url URL   where to perform the handshake (default: pqc/handshake beside --server; v1: handshake)
  -h, --help            show this help

Host configuration (e.g. claude_desktop_config.json):
  {"mcpServers": {"remote": {"command": "npx",
    "args": ["-y", "pqc-mcp", "bridge", "--server", "https://mcp.example.com/mcp",
             "--identity", "/home/me/.pqc/agent.json", "--server-did", "did:pqaid:..."]}}}

${EXIT_CODES}`,

  call: `Usage: pqc-mcp call URL TOOL [JSON-ARGS] --identity FILE (--server-did DID | --trust-on-first-use) [options]

Calls one tool on a PQC-secured MCP server (handshake, signed request, verified response) and prints the result:
the text of its content by default, the whole result with --json. Exits 1 when the tool reports an error.

Arguments:
  URL                   the server's MCP endpoint, e.g. http://127.0.0.1:8443/mcp
  TOOL                  the tool's name
  JSON-ARGS             the tool's arguments as a JSON object (default {})

Options:
  --identity FILE       this client's identity file (required)
  --server-did DID      the server's DID: any other server is refused
  --trust-on-first-use  accept whichever server answers (instead of --server-did)
  --profile v2|v1       v2 (default), or v1 for a pqc-mcp-transport (v1) peer: one plain JSON-RPC
                        tools/call, no initialize
  --handshake-url URL   where to perform the handshake (default: pqc/handshake beside URL; v1: handshake)
  --mcp-protocol MODE   MCP version negotiation: legacy (default: initialize), auto (probe server/discover,
                        fall back to initialize) or a version to require, e.g. 2026-07-28
  --json                print the whole result as JSON
  --timeout SEC         give up after SEC seconds (default 60)
  -h, --help            show this help

${EXIT_CODES}`,

  verify: `Usage: pqc-mcp verify [FILE|-] [--peer-did DID] [--peer-key HEX|FILE] [--profiles v2,v1] [options]

Verifies a captured signed message (a JSON-RPC message with its _pqc envelope, a batch, or SSE 'data:' lines)
read from FILE or stdin, and prints the verdict and the reason. With --peer-key it verifies against that key;
otherwise against the envelope's own public_key (which proves integrity, not who signed: add --peer-did).
The message's age is not checked unless --max-age is given; session and replay checks need the live session
and are not made.

Options:
  --peer-did DID        the expected signer
  --peer-key HEX|FILE   the expected signer's public key: lowercase hex, or an identity file (public or private)
  --profiles LIST       accepted profiles: v2 (default) or v2,v1
  --max-age SEC         also refuse a message whose timestamp is more than SEC seconds away from now
  --json                print the verdict as JSON
  -h, --help            show this help

Exit codes:
  0  the message is valid
  1  the message is invalid (the reason is printed)
  2  usage error (wrong argument, unreadable file)
  3  unexpected failure`,

  audit: `Usage: pqc-mcp audit verify FILE [--server-key HEX|FILE]... [--client-key HEX|FILE]... [--require-closed] [--json]

Verifies an audit file written by a server's AuditChain (openAuditFile, docs/AUDIT.md) offline: each line's
SHA3-256 link to the line before, every signed checkpoint, and every kept request and answer against its signer's
key. Prints the first line that fails and why. Lines after the last checkpoint are not signed: they are reported,
and a file that does not end with a final checkpoint (cut, or its writer did not close it) is reported as such.

Options:
  --server-key HEX|FILE  the server key the file must be signed with (repeatable); without it, the file's own key
                         is used, which proves the file is intact, not who wrote it
  --client-key HEX|FILE  a client key for kept messages whose handshake is not in the file (repeatable)
  --require-closed       fail when the file does not end with a final checkpoint (a truncated tail is then an error)
  --json                 print the result as JSON
  -h, --help             show this help

Exit codes:
  0  the file verifies
  1  the file does not verify (the first failing line is printed)
  2  usage error (wrong argument, unreadable file)
  3  unexpected failure`,
};
