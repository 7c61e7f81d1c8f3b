/**
 * The routing fuzz every server adapter runs: raw request targets that a framework may route to the MCP handler
 * (absolute forms, percent-encodings, dot segments, `;`, backslashes, case, trailing slashes and dots, mount prefixes),
 * sent unsigned over a real socket. A target the framework routes to the handler without the PQC layer verifying it
 * first would be a complete bypass: the handler must never run unverified. A control run of the same app without the
 * PQC layer tells which targets the framework routes at all, so the report says what was refused and what not routed.
 */
import net from 'node:net';
import { report } from './report.js';

/** One run of the app's MCP route handler. */
export interface HandlerRun {
  /** The raw request target the handler's request came with. */
  target: string;
  method: string;
  /** Whether the PQC layer verified the request (Express `req.pqc`, Fastify `request.pqc`, Hono `c.get('pqc')`). */
  verified: boolean;
}

/** A server started for the fuzz on 127.0.0.1. */
export interface FuzzServer {
  port: number;
  /** Every run of the MCP route handler, in order. */
  handlerRuns: HandlerRun[];
  close(): Promise<void>;
}

/** Starts the app under test: with the PQC layer (`pqc: true`), or the same app without it (the control run). */
export type StartFuzzServer = (options: { pqc: boolean }) => Promise<FuzzServer>;

/** The methods of MCP's Streamable HTTP transport, and HEAD (routed to GET routes by Express and Fastify). */
export const FUZZ_METHODS = ['POST', 'GET', 'DELETE', 'HEAD'] as const;

/** Spellings of the endpoint `/mcp` relative to a mount point, each sent under every prefix of `FULL_PREFIXES`. */
const SPELLINGS = [
  // case, trailing slashes and dots
  '/mcp', '/MCP', '/Mcp', '/mCP', '/mcp/', '/MCP/', '/mcp//', '/mcp.', '/mcp..', '/mcp./', '/mcp...',
  // dot segments
  '/./mcp', '/x/../mcp', '/x/./../mcp', '/../mcp', '/mcp/.', '/mcp/..', '/mcp/./', '/mcp/x/..', '/mcp/x/../', '/.mcp',
  // repeated slashes
  '//mcp', '///mcp', '/x//mcp',
  // percent-encodings: of the letters, of separators and dots, of controls and spaces, double, invalid
  '/m%63p', '/%6D%63%70', '/%6d%63%70', '/%4D%43%50', '/mc%70/', '/mcp%2f', '/mcp%2F', '/%2fmcp', '/%2Fmcp', '/x%2f..%2fmcp',
  '/mcp%3b', '/mcp%3Bx', '/mcp%00', '/mcp%20', '/mcp%09', '/mcp%0a', '/mcp%0d%0a', '/mcp%C2%A0', '/mcp%23', '/mcp%3f',
  '/mcp%3F', '/mcp%2e', '/mcp%2E%2E', '/%2e/mcp', '/%2e%2e/mcp', '/%2e%2e/x/mcp', '/x/%2e%2e/mcp', '/x/%2E%2E/mcp',
  '/%252e%252e/mcp', '/m%2563p', '/mcp%252f', '/mcp%5c', '/%5cmcp', '/x%5c..%5cmcp', '/mcp%', '/mcp%2', '/mcp%zz',
  '/mcp%c0%af', '/mcp%ff', '/mcp%u0070',
  // matrix parameters
  '/mcp;x', '/mcp;', '/mcp;/', '/mcp;jsessionid=1', '/;/mcp', '/mcp;x/..', '/x;/../mcp',
  // backslashes
  '/mcp\\', '/\\mcp', '/x\\..\\mcp', '/mcp\\.', '/mcp\\x\\..', '\\mcp',
  // query and fragment
  '/mcp?x=1', '/mcp/?x=1', '/mcp?', '/mcp#f', '/mcp#', '/mcp/#f', '/mcp?/x', '/mcp#/x', '/mcp?x=/../y', '/x?/../mcp',
  '/x#/../mcp',
  // near misses that no framework should route to the endpoint
  '/mcpx', '/mcp/x', '/xmcp', '/x/mcp', '/m', '/',
];

/** The spellings sent under every other prefix variant (so the corpus stays a few hundred targets). */
const CORE_SPELLINGS = ['/mcp', '/MCP', '/mcp/', '/mcp.', '//mcp', '/./mcp', '/m%63p', '/mcp;x', '/mcp\\', '/mcp?x=1'];

/** Mount prefixes under which every spelling is sent. */
const FULL_PREFIXES = ['', '/api'];

/** Variants of the `/api` prefix under which the core spellings are sent. */
const PREFIX_VARIANTS = [
  '/API', '/Api', '/api/', '//api', '/api/.', '/api/./', '/x/../api', '/api/x/..', '/%61pi', '/%41PI', '/api;x', '/api.',
  '/api%2f', '/api\\', '/./api', '/api%20',
];

/** Whole targets that do not split into prefix and spelling. */
const WHOLE = ['/api%2fmcp', '/api%2Fmcp', '/api%5cmcp', '/api\\mcp', '/apimcp', '/api', '/api/', '/mcp/api', '/api/mcp/api'];

/** Absolute-form (and odd) heads a path is appended to: `${head}${path}`. */
const ABSOLUTE_HEADS = [
  'http://h', 'https://h', 'HTTP://H', 'Http://h', 'http://h:80', 'http://h:8080', 'http://h:', 'http://user@h',
  'http://user:pw@h', 'http://h@evil', 'http://127.0.0.1', 'http://[::1]', 'http://h.', 'http://H.', 'http://h%2f',
  'http://h?', 'http://h#', 'http://h\\', 'http://', 'https://', 'HTTP://', 'http:/', 'http:', 'https:', 'http:\\\\h',
  'http:\\', 'ws://h', 'ftp://h', 'file://', 'h', '//h', '///h', '*',
];

/** The paths appended to each absolute head. */
const ABSOLUTE_PATHS = ['/mcp', '/MCP/', '/api/mcp', '/API/mcp/', '/m%63p', '/../mcp', '/x/../mcp', '/api/x/../mcp', '/./api/./mcp'];

/** The corpus: a few hundred raw request targets, each once, in a fixed order. */
export function routingCorpus(): string[] {
  const targets: string[] = [];
  for (const prefix of FULL_PREFIXES) for (const spelling of SPELLINGS) targets.push(prefix + spelling);
  for (const prefix of PREFIX_VARIANTS) for (const spelling of CORE_SPELLINGS) targets.push(prefix + spelling);
  targets.push(...WHOLE);
  for (const head of ABSOLUTE_HEADS) {
    for (const path of ABSOLUTE_PATHS) targets.push(head + path);
    // `http:mcp`, `http://mcp`, `http:\\api/mcp`: a scheme with no authority before the path
    if (/^[a-z]+:[/\\]*$/i.test(head)) targets.push(`${head}mcp`, `${head}api/mcp`);
  }
  // A request line cannot carry whitespace in its target: such a target would test the HTTP parser, not the router.
  return [...new Set(targets)].filter((t) => !/[\s]/.test(t));
}

/** What the server answered a raw request. */
export interface RawAnswer {
  /** The status of the status line; 0 when the connection closed without one. */
  status: number;
  /** The PQC reason of a PQC rejection (`error.data.pqc` of the body), when the body names one. */
  reason: string | undefined;
}

/** The JSON-RPC body of an unsigned POST: what a client without a PQC session would send. */
const UNSIGNED_BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"transfer","arguments":{"amount":10}}}';

/**
 * Sends `METHOD <target> HTTP/1.1` on a new connection to 127.0.0.1, with a Host header and an unsigned JSON-RPC body
 * (POST) or none, and reads the answer until the server closes (`Connection: close`) or `timeoutMs`.
 */
export function sendRawRequest(port: number, method: string, target: string, timeoutMs = 20_000): Promise<RawAnswer> {
  const body = method === 'POST' ? UNSIGNED_BODY : '';
  const head =
    `${method} ${target} HTTP/1.1\r\nHost: localhost:${port}\r\nAccept: application/json, text/event-stream\r\n` +
    (method === 'POST' ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : '') +
    'Connection: close\r\n\r\n';
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head + body));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const reason = /"pqc"\s*:\s*"([a-z_]+)"/.exec(text);
      resolve({ status: status ? Number(status[1]) : 0, reason: reason?.[1] });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > 64 * 1024) finish();
    });
    socket.once('close', finish);
    socket.once('error', () => {}); // a reset still closes: what arrived is the answer
  });
}

/** One target and method of the corpus, with what each run made of it. */
export interface FuzzCase {
  target: string;
  method: string;
  /** The control run (no PQC layer): the framework routed it to the MCP handler. */
  routed: boolean;
  /** The answer of the server with the PQC layer. */
  answer: RawAnswer;
}

/** What the fuzz found on one server. */
export interface FuzzOutcome {
  name: string;
  corpusSize: number;
  cases: FuzzCase[];
  /** Handler runs with the PQC layer that it had not verified: bypasses. */
  unverifiedRuns: HandlerRun[];
}

async function probe(server: FuzzServer, corpus: readonly string[], methods: readonly string[]): Promise<Map<string, RawAnswer>> {
  const jobs = corpus.flatMap((target) => methods.map((method) => ({ target, method })));
  const answers = new Map<string, RawAnswer>();
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const { target, method } = jobs[next++]!;
      answers.set(`${method} ${target}`, await sendRawRequest(server.port, method, target));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return answers;
}

/** The `METHOD target` pairs the app without the PQC layer routes to its MCP handler. */
async function routedByFramework(start: StartFuzzServer, corpus: readonly string[], methods: readonly string[]): Promise<Set<string>> {
  const control = await start({ pqc: false });
  try {
    await probe(control, corpus, methods);
    return new Set(control.handlerRuns.map((run) => `${run.method} ${run.target}`));
  } finally {
    await control.close();
  }
}

/** Control runs by `controlKey`: apps that differ only in the PQC layer's options route alike. */
const controls = new Map<string, Promise<Set<string>>>();

/** Options of `fuzzRouting` and `runRoutingFuzz`. */
export interface RoutingFuzzOptions {
  corpus?: readonly string[];
  methods?: readonly string[];
  /** Suites with the same key share one control run: give it to apps that differ only in the PQC layer's options. */
  controlKey?: string;
}

/** Runs the corpus against the control app and the protected app (one after the other, each closed after). */
export async function fuzzRouting(name: string, start: StartFuzzServer, options: RoutingFuzzOptions = {}): Promise<FuzzOutcome> {
  const { corpus = routingCorpus(), methods = FUZZ_METHODS, controlKey } = options;
  let control = controlKey === undefined ? undefined : controls.get(controlKey);
  if (control === undefined) {
    control = routedByFramework(start, corpus, methods);
    if (controlKey !== undefined) controls.set(controlKey, control);
  }
  const routed = await control;
  const server = await start({ pqc: true });
  let answers: Map<string, RawAnswer>;
  try {
    answers = await probe(server, corpus, methods);
  } finally {
    await server.close();
  }
  const cases = corpus.flatMap((target) =>
    methods.map((method) => ({ target, method, routed: routed.has(`${method} ${target}`), answer: answers.get(`${method} ${target}`)! })),
  );
  return { name, corpusSize: corpus.length, cases, unverifiedRuns: server.handlerRuns.filter((run) => !run.verified) };
}

/** A PQC rejection: a §6 reason in the body, or (HEAD, no body) a 400 or 401. */
function refusedByPQC(c: FuzzCase): boolean {
  return c.answer.reason !== undefined || (c.method === 'HEAD' && (c.answer.status === 400 || c.answer.status === 401));
}

/** The counts of an outcome, on one line. */
export function summarizeRoutingFuzz(o: FuzzOutcome): string {
  const routed = o.cases.filter((c) => c.routed);
  const refused = routed.filter(refusedByPQC);
  const overProtected = o.cases.filter((c) => !c.routed && refusedByPQC(c));
  const reasons = new Map<string, number>();
  for (const c of refused) reasons.set(`${c.answer.status} ${c.answer.reason ?? '-'}`, (reasons.get(`${c.answer.status} ${c.answer.reason ?? '-'}`) ?? 0) + 1);
  const routedTargets = new Set(routed.map((c) => c.target)).size;
  return (
    `${o.name}: ${o.corpusSize} targets x ${o.cases.length / o.corpusSize} methods = ${o.cases.length} requests; ` +
    `routed to the handler by the framework: ${routed.length} (${routedTargets} targets), refused by PQC: ${refused.length} ` +
    `[${[...reasons].map(([k, n]) => `${k}: ${n}`).join(', ')}]; not routed: ${o.cases.length - routed.length} ` +
    `(of which PQC refused anyway: ${overProtected.length}); handler runs unverified: ${o.unverifiedRuns.length}`
  );
}

/** Fails the test with the outcome's counts and every finding, one a line. */
function failIfAny(outcome: FuzzOutcome, what: string, findings: string[]): void {
  if (findings.length === 0) return;
  throw new Error(`${what} (${findings.length}):\n  ${findings.join('\n  ')}\n${summarizeRoutingFuzz(outcome)}`);
}

/**
 * The fuzz as a jest suite: `start` the app with its MCP route handler recording every run. Asserts that the handler
 * never ran unverified, and that every target the framework routes to the handler got a PQC rejection.
 */
export function runRoutingFuzz(name: string, start: StartFuzzServer, options: RoutingFuzzOptions = {}): void {
  describe(`routing fuzz: ${name}`, () => {
    let outcome: FuzzOutcome;
    beforeAll(async () => {
      outcome = await fuzzRouting(name, start, options);
      report(`routing fuzz ${summarizeRoutingFuzz(outcome)}`);
    }, 300_000); // a few seconds, unless the machine is busy

    test('the MCP handler never runs on a request the PQC layer did not verify', () => {
      const runs = outcome.unverifiedRuns.map((run) => `${run.method} ${run.target}`);
      failIfAny(outcome, 'BYPASS: the MCP handler ran on requests the PQC layer did not verify', runs);
    });

    test('every target the framework routes to the MCP handler gets a PQC rejection', () => {
      const unrefused = outcome.cases.filter((c) => c.routed && !refusedByPQC(c)).map((c) => `${c.method} ${c.target} -> ${c.answer.status}`);
      failIfAny(outcome, 'routed to the MCP handler by the framework, but not answered with a PQC rejection', unrefused);
    });
  });
}
