/**
 * OpenTelemetry (packages/core/README.md, "Telemetry"): a real session over HTTP (the MCP SDK v2 client through
 * pqcFetch, the core on node:http in front of an MCP SDK server), recorded by the real OpenTelemetry SDK's in-memory
 * exporters: spans for the handshake, each verification and each signing, with outcome and reason; counters and
 * latency histograms; a forged request and an unknown session counted as rejections with their reason; a client
 * that invents method names cannot grow the metrics' cardinality.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { metrics, trace } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { connectSdkClient, createWebMcpApp1x, seededIdentity } from '@pqc-mcp/test-kit';
import { createPQCHandler, pqcFetch, type PQCServerOptions } from '../src/index.js';
import { nodeRequestTarget, sendWebResponse, toWebRequest } from '../src/node/index.js';

const SERVER = seededIdentity(61);
const CLIENT = seededIdentity(62);

async function start(options: PQCServerOptions): Promise<{ url: string; server: Server }> {
  const handler = createPQCHandler(options);
  const app = createWebMcpApp1x({ enableJsonResponse: false });
  const server = createServer((req, res) => {
    handler
      .handle(toWebRequest(req), (request, body) => app(request, body), { target: nodeRequestTarget(req) })
      .then((response) => sendWebResponse(res, response))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}

function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('telemetry on a real session over HTTP', () => {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  let url: string;
  let server: Server;

  beforeAll(async () => {
    ({ url, server } = await start({
      identity: SERVER,
      telemetry: { tracer: tracerProvider.getTracer('pqc-mcp-test'), meter: meterProvider.getMeter('pqc-mcp-test') },
    }));
    const client = await connectSdkClient('v2 client, legacy', url, pqcFetch({ identity: CLIENT, serverDid: SERVER.did }));
    expect(await client.callTool('echo', { text: 'traced' })).toMatchObject({ content: [{ type: 'text', text: 'traced' }] });
    await client.close();
    // A request in a session the server does not know: rejected before its body is read.
    const unknown = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'PQC-Session': '0'.repeat(32) },
      body: '{}',
    });
    expect(unknown.status).toBe(401);
    // A handshake that is not one.
    const forged = await fetch(new URL('pqc/handshake', url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"x"}' });
    expect(forged.status).toBeGreaterThanOrEqual(400);
    await reader.forceFlush();
  }, 30_000);

  afterAll(async () => {
    await stop(server);
    await meterProvider.shutdown();
    await tracerProvider.shutdown();
  });

  const byName = (name: string): ReadableSpan[] => spans.getFinishedSpans().filter((s) => s.name === name);

  test('handshake spans: accepted with the session and the client; refused with its reason', () => {
    const handshakes = byName('pqc.handshake');
    const ok = handshakes.find((s) => s.attributes['pqc.outcome'] === 'accepted')!;
    expect(ok.attributes).toMatchObject({ 'mcp.method.name': 'pqc/handshake', 'pqc.peer.did': CLIENT.did, 'http.request.method': 'POST' });
    expect(ok.attributes['pqc.session.id']).toMatch(/^[0-9a-f]{32}$/);
    expect(ok.status.code).toBe(0);
    const refused = handshakes.find((s) => s.attributes['pqc.outcome'] === 'rejected')!;
    expect(refused.attributes).toMatchObject({ 'error.type': 'handshake_failed', 'pqc.reason': 'handshake_failed' });
    expect(refused.status).toEqual({ code: 2, message: 'handshake_failed' });
  });

  test('verification spans: one per request, with the MCP method and sessions; the unknown session rejected', () => {
    const verified = byName('pqc.verify').filter((s) => s.attributes['pqc.outcome'] === 'accepted');
    const methods = verified.map((s) => s.attributes['mcp.method.name']);
    expect(methods).toEqual(expect.arrayContaining(['initialize', 'notifications/initialized', 'tools/call']));
    const call = verified.find((s) => s.attributes['mcp.method.name'] === 'tools/call')!;
    expect(call.attributes['mcp.session.id']).toEqual(expect.any(String));
    expect(call.attributes['pqc.session.id']).toMatch(/^[0-9a-f]{32}$/);
    const rejected = byName('pqc.verify').filter((s) => s.attributes['pqc.outcome'] === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.attributes).toMatchObject({ 'error.type': 'unknown_session', 'http.request.method': 'POST' });
    expect(rejected[0]!.attributes['mcp.session.id']).toBeUndefined();
  });

  test('signing spans: one per message signed, with the method of server requests and the algorithm', () => {
    const signs = byName('pqc.sign');
    expect(signs.length).toBeGreaterThanOrEqual(2);
    expect(signs.every((s) => s.attributes['pqc.outcome'] === 'signed' && s.attributes['pqc.algorithm'] === SERVER.algorithm)).toBe(true);
  });

  test('counters and latency histograms, by outcome and reason', () => {
    const all = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    const metric = (name: string) => all.filter((m) => m.descriptor.name === name).at(-1)!;
    const points = (name: string) => metric(name).dataPoints.map((p) => ({ attributes: p.attributes, value: p.value }));
    expect(points('pqc.handshakes')).toEqual(
      expect.arrayContaining([
        { attributes: { 'pqc.outcome': 'accepted', 'http.request.method': 'POST', 'mcp.method.name': 'pqc/handshake' }, value: 1 },
        { attributes: { 'pqc.outcome': 'rejected', 'http.request.method': 'POST', 'mcp.method.name': 'pqc/handshake', 'error.type': 'handshake_failed' }, value: 1 },
      ]),
    );
    expect(points('pqc.verifications')).toEqual(
      expect.arrayContaining([
        { attributes: { 'pqc.outcome': 'accepted', 'http.request.method': 'POST', 'mcp.method.name': 'tools/call' }, value: 1 },
        { attributes: { 'pqc.outcome': 'rejected', 'http.request.method': 'POST', 'error.type': 'unknown_session' }, value: 1 },
      ]),
    );
    const signatures = points('pqc.signatures').reduce((n, p) => n + (p.value as number), 0);
    expect(signatures).toBe(byName('pqc.sign').length);
    for (const name of ['pqc.handshake.duration', 'pqc.verification.duration', 'pqc.signing.duration']) {
      const histogram = metric(name) as HistogramMetricData;
      expect(histogram.descriptor.unit).toBe('s');
      const count = histogram.dataPoints.reduce((n, p) => n + p.value.count, 0);
      expect(count).toBeGreaterThan(0);
      expect(histogram.dataPoints.every((p) => (p.value.sum ?? 0) >= 0 && (p.value.max ?? 0) < 30)).toBe(true);
    }
  });
});

describe('telemetry option', () => {
  test('the global no-op API (no SDK registered) is accepted and changes nothing', async () => {
    const { url, server } = await start({ identity: SERVER, telemetry: { tracer: trace.getTracer('x'), meter: metrics.getMeter('x') } });
    try {
      const client = await connectSdkClient('v2 client, legacy', url, pqcFetch({ identity: CLIENT, serverDid: SERVER.did }));
      expect(await client.listTools()).toContain('echo');
      await client.close();
    } finally {
      await stop(server);
    }
  });

  test('core imports nothing of OpenTelemetry: it works where @opentelemetry/api is absent', () => {
    const src = fileURLToPath(new URL('../src/', import.meta.url));
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(30);
    for (const file of files) expect({ file, imports: /from ['"]@opentelemetry|import\(['"]@opentelemetry/.test(readFileSync(join(src, file), 'utf8')) }).toEqual({ file, imports: false });
  });

  test('a value that is no tracer or meter is refused when the handler is made', () => {
    expect(() => createPQCHandler({ identity: SERVER, telemetry: { tracer: {} as never } })).toThrow(/option "telemetry"/);
    expect(() => createPQCHandler({ identity: SERVER, telemetry: { meter: { createCounter: () => ({ add() {} }) } as never } })).toThrow(/option "telemetry"/);
  });

  test('an authenticated client that invents method names is counted as _OTHER, not as new series', async () => {
    const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const { url, server } = await start({ identity: SERVER, telemetry: { meter: meterProvider.getMeter('x') } });
    try {
      const fetch = pqcFetch({ identity: CLIENT, serverDid: SERVER.did });
      for (let i = 0; i < 5; i++) {
        await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({ jsonrpc: '2.0', method: `made/up/${i}` }),
        });
      }
      await reader.forceFlush();
      const verifications = metricExporter
        .getMetrics()
        .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
        .filter((m) => m.descriptor.name === 'pqc.verifications')
        .at(-1)!;
      const methods = verifications.dataPoints.map((p) => p.attributes['mcp.method.name']);
      expect(methods).toContain('_OTHER');
      expect(methods.some((m) => String(m).startsWith('made/up'))).toBe(false);
    } finally {
      await stop(server);
      await meterProvider.shutdown();
    }
  });
});
