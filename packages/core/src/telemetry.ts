/**
 * OpenTelemetry for the server layer, without importing it: the option takes a tracer and a meter from
 * `@opentelemetry/api` (an optional peer dependency), described here by the few members core calls, so nothing is
 * loaded when telemetry is off and nothing breaks when the package is absent. Spans and instruments follow the
 * OpenTelemetry MCP semantic conventions where they name the thing (`mcp.method.name`, `mcp.session.id`,
 * `error.type`); the PQC layer's own are under `pqc.*`. With the option unset, the hot path makes no call at all.
 */

/** An attribute value, as OpenTelemetry takes it. */
export type TelemetryAttributeValue = string | number | boolean;
/** Attributes, as OpenTelemetry takes them. */
export type TelemetryAttributes = Record<string, TelemetryAttributeValue | undefined>;

/** The members of an OpenTelemetry `Span` core calls. */
export interface TelemetrySpan {
  setAttribute(key: string, value: TelemetryAttributeValue): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

/** The member of an OpenTelemetry `Tracer` core calls (`trace.getTracer(name)` of `@opentelemetry/api` fits). */
export interface TelemetryTracer {
  startSpan(name: string, options?: { kind?: number; attributes?: TelemetryAttributes }): TelemetrySpan;
}

/** The members of an OpenTelemetry `Meter` core calls (`metrics.getMeter(name)` of `@opentelemetry/api` fits). */
export interface TelemetryMeter {
  createCounter(name: string, options?: { description?: string; unit?: string }): { add(value: number, attributes?: TelemetryAttributes): void };
  createHistogram(name: string, options?: { description?: string; unit?: string }): { record(value: number, attributes?: TelemetryAttributes): void };
}

/** The `telemetry` option: a tracer, a meter, or both. */
export interface PQCTelemetry {
  tracer?: TelemetryTracer;
  meter?: TelemetryMeter;
}

/** Span and metric attribute names (OpenTelemetry's MCP conventions where they exist). */
export const TELEMETRY_ATTRIBUTES = {
  method: 'mcp.method.name',
  mcpSession: 'mcp.session.id',
  requestId: 'jsonrpc.request.id',
  errorType: 'error.type',
  httpMethod: 'http.request.method',
  outcome: 'pqc.outcome',
  reason: 'pqc.reason',
  session: 'pqc.session.id',
  peer: 'pqc.peer.did',
  algorithm: 'pqc.algorithm',
} as const;

/** Span names and metric names of the PQC layer. */
export const TELEMETRY_NAMES = {
  handshakeSpan: 'pqc.handshake',
  verifySpan: 'pqc.verify',
  signSpan: 'pqc.sign',
  handshakes: 'pqc.handshakes',
  verifications: 'pqc.verifications',
  signatures: 'pqc.signatures',
  handshakeDuration: 'pqc.handshake.duration',
  verificationDuration: 'pqc.verification.duration',
  signingDuration: 'pqc.signing.duration',
} as const;

/** `SpanKind.SERVER` and `SpanStatusCode.ERROR` of `@opentelemetry/api` (stable values, not imported). */
const SPAN_KIND_SERVER = 1;
const SPAN_KIND_INTERNAL = 0;
const STATUS_ERROR = 2;

/**
 * MCP methods a metric may name; any other (an authenticated client may send any name) is counted as `_OTHER`, so
 * that a client cannot make the metrics' cardinality grow. Spans carry the verified name as is.
 */
const KNOWN_METHODS = new Set([
  'initialize',
  'ping',
  'server/discover',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/message',
  'notifications/roots/list_changed',
  'notifications/tools/list_changed',
  'notifications/resources/list_changed',
  'notifications/resources/updated',
  'notifications/prompts/list_changed',
  'pqc/handshake',
]);

function metricMethod(method: string | null | undefined): string | undefined {
  if (method === null || method === undefined) return undefined;
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
}

type Counter = ReturnType<TelemetryMeter['createCounter']>;
type Histogram = ReturnType<TelemetryMeter['createHistogram']>;

/** What one measured operation carries until it ends. */
export interface TelemetryOperation {
  readonly kind: 'handshake' | 'verify';
  readonly start: number;
  readonly span: TelemetrySpan | undefined;
  readonly httpMethod: string;
  ended: boolean;
}

/** How a measured operation ended. */
export interface OperationOutcome {
  accepted: boolean;
  reason?: string | null;
  method?: string | null;
  sessionId?: string | null;
  mcpSessionId?: string | null;
  peerDid?: string | null;
}

/** What a signing reports. */
export interface SigningFacts {
  method: string | null;
  sessionId: string;
  mcpSessionId: string | undefined;
  algorithm: string;
}

const now = (): number => performance.now();

/** The server's telemetry: created only when the option is set (`resolveTelemetry`). */
export class ServerTelemetry {
  readonly #tracer: TelemetryTracer | undefined;
  readonly #counters: Record<'handshake' | 'verify' | 'sign', Counter> | undefined;
  readonly #durations: Record<'handshake' | 'verify' | 'sign', Histogram> | undefined;

  constructor(options: PQCTelemetry) {
    this.#tracer = options.tracer;
    const meter = options.meter;
    if (meter) {
      const n = TELEMETRY_NAMES;
      this.#counters = {
        handshake: meter.createCounter(n.handshakes, { description: 'PQC handshakes answered, by outcome', unit: '{handshake}' }),
        verify: meter.createCounter(n.verifications, { description: 'Requests verified by the PQC layer, by outcome', unit: '{request}' }),
        sign: meter.createCounter(n.signatures, { description: 'Messages signed by the PQC layer', unit: '{message}' }),
      };
      this.#durations = {
        handshake: meter.createHistogram(n.handshakeDuration, { description: 'Time to check a handshake and answer it', unit: 's' }),
        verify: meter.createHistogram(n.verificationDuration, { description: 'Time from a request to its verdict (before the application runs)', unit: 's' }),
        sign: meter.createHistogram(n.signingDuration, { description: 'Time to sign one message', unit: 's' }),
      };
    }
  }

  /** Starts measuring a handshake or a request's verification. */
  begin(kind: 'handshake' | 'verify', httpMethod: string): TelemetryOperation {
    const span = this.#tracer?.startSpan(kind === 'handshake' ? TELEMETRY_NAMES.handshakeSpan : TELEMETRY_NAMES.verifySpan, {
      kind: SPAN_KIND_SERVER,
      attributes: { [TELEMETRY_ATTRIBUTES.httpMethod]: httpMethod },
    });
    return { kind, start: now(), span, httpMethod, ended: false };
  }

  /** Ends a measured operation (once; later calls do nothing). */
  end(op: TelemetryOperation, outcome: OperationOutcome): void {
    if (op.ended) return;
    op.ended = true;
    const seconds = (now() - op.start) / 1000;
    const A = TELEMETRY_ATTRIBUTES;
    const verdict = outcome.accepted ? 'accepted' : 'rejected';
    const reason = outcome.accepted ? undefined : (outcome.reason ?? 'internal_error');
    const method = op.kind === 'handshake' ? 'pqc/handshake' : outcome.method;
    if (op.span) {
      const span = op.span;
      span.setAttribute(A.outcome, verdict);
      if (method) span.setAttribute(A.method, method);
      if (outcome.sessionId) span.setAttribute(A.session, outcome.sessionId);
      if (outcome.peerDid) span.setAttribute(A.peer, outcome.peerDid);
      // The Mcp-Session-Id header is the client's claim until its request verified (it is signed in http).
      if (outcome.accepted && outcome.mcpSessionId) span.setAttribute(A.mcpSession, outcome.mcpSessionId);
      if (reason) {
        span.setAttribute(A.reason, reason);
        span.setAttribute(A.errorType, reason);
        span.setStatus({ code: STATUS_ERROR, message: reason });
      }
      span.end();
    }
    if (this.#counters && this.#durations) {
      const attributes: TelemetryAttributes = { [A.outcome]: verdict, [A.httpMethod]: op.httpMethod };
      const m = metricMethod(method);
      if (m) attributes[A.method] = m;
      if (reason) attributes[A.errorType] = reason;
      this.#counters[op.kind].add(1, attributes);
      this.#durations[op.kind].record(seconds, attributes);
    }
  }

  /** Starts measuring one signing; call the function it returns when the signature is made (or failed). */
  signing(facts: SigningFacts): (error?: unknown) => void {
    const start = now();
    const A = TELEMETRY_ATTRIBUTES;
    const span = this.#tracer?.startSpan(TELEMETRY_NAMES.signSpan, {
      kind: SPAN_KIND_INTERNAL,
      attributes: {
        [A.session]: facts.sessionId,
        [A.algorithm]: facts.algorithm,
        ...(facts.method !== null ? { [A.method]: facts.method } : {}),
        ...(facts.mcpSessionId !== undefined ? { [A.mcpSession]: facts.mcpSessionId } : {}),
      },
    });
    return (error) => {
      const seconds = (now() - start) / 1000;
      const outcome = error === undefined ? 'signed' : 'failed';
      if (span) {
        span.setAttribute(A.outcome, outcome);
        if (error !== undefined) {
          const type = error instanceof Error ? error.name : 'Error';
          span.setAttribute(A.errorType, type);
          span.setStatus({ code: STATUS_ERROR, message: error instanceof Error ? error.message : String(error) });
        }
        span.end();
      }
      if (this.#counters && this.#durations) {
        const attributes: TelemetryAttributes = { [A.outcome]: outcome, [A.algorithm]: facts.algorithm };
        const m = metricMethod(facts.method);
        if (m) attributes[A.method] = m;
        this.#counters.sign.add(1, attributes);
        this.#durations.sign.record(seconds, attributes);
      }
    };
  }
}

/** The server's telemetry for the option, or undefined when it is unset (then no call is made anywhere). */
export function resolveTelemetry(option: PQCTelemetry | undefined): ServerTelemetry | undefined {
  if (option === undefined) return undefined;
  if (typeof option !== 'object' || option === null) throw new TypeError('telemetry must be { tracer?, meter? }');
  if (option.tracer !== undefined && typeof option.tracer?.startSpan !== 'function') throw new TypeError('telemetry.tracer must be an OpenTelemetry Tracer');
  if (option.meter !== undefined && (typeof option.meter?.createCounter !== 'function' || typeof option.meter?.createHistogram !== 'function')) {
    throw new TypeError('telemetry.meter must be an OpenTelemetry Meter');
  }
  if (option.tracer === undefined && option.meter === undefined) return undefined;
  return new ServerTelemetry(option);
}
