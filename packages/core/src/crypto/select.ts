/**
 * Choosing the ML-DSA backend.
 *
 * The process-wide default is chosen lazily, on the first `defaultBackend()` call, from the environment variable
 * `PQC_MCP_BACKEND` (read through `globalThis.process?.env`, so runtimes without `process` are fine):
 *   - unset, empty or `auto`: the fastest available backend (`node` when `nodeBackend()` exists, else `webcrypto`
 *     once `detectBackends()` has found it, else `noble`);
 *   - `noble`: always the pure-JS backend;
 *   - `node`: the native backend, and an error if this runtime has none (so CI can force and prove it);
 *   - `webcrypto`: WebCrypto ML-DSA, and an error unless `detectBackends()` has found it.
 * Any other value is an error. `setDefaultBackend` overrides the choice at any time (tests, applications).
 *
 * The `node` backend is detected synchronously, on first use. WebCrypto can only be probed asynchronously: an
 * application that wants it where it is the fastest (Bun) awaits `detectBackends()` once at start, before it creates
 * identities; a default chosen by `auto` before that is chosen again then.
 */
import { nobleBackend } from './noble.js';
import { nodeBackend } from './node.js';
import type { CryptoBackend } from './types.js';
import { detectWebCrypto, webcryptoBackend, webcryptoDetected } from './webcrypto.js';

/** A backend by name (`auto` = fastest available), or a backend object used as is. */
export type BackendPreference = 'auto' | 'noble' | 'node' | 'webcrypto' | CryptoBackend;

/** The environment variable that sets the initial default backend. */
export const BACKEND_ENV_VAR = 'PQC_MCP_BACKEND';

function isBackend(value: unknown): value is CryptoBackend {
  const b = value as Partial<CryptoBackend> | null;
  return (
    typeof b === 'object' &&
    b !== null &&
    typeof b.name === 'string' &&
    typeof b.signingKey === 'function' &&
    typeof b.verifyingKey === 'function'
  );
}

/**
 * The backend for `preference` (default `'auto'`): `'auto'` is the fastest available (`node` if `nodeBackend()`
 * exists, else `webcrypto` if `detectBackends()` found it, else `noble`). Throws an `Error` if `'node'` or
 * `'webcrypto'` is asked for on a runtime without it, and a `TypeError` for an unknown preference.
 */
export function selectBackend(preference: BackendPreference = 'auto'): CryptoBackend {
  if (isBackend(preference)) return preference;
  switch (preference) {
    case 'auto':
      return nodeBackend() ?? webcryptoBackend() ?? nobleBackend;
    case 'noble':
      return nobleBackend;
    case 'node': {
      const node = nodeBackend();
      if (!node) {
        const version = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
        throw new Error(
          `the 'node' ML-DSA backend is not available on this runtime (${version ? `Node ${version}` : 'not Node'}): ` +
            "it needs node:crypto with ML-DSA and context strings (Node >= 24.x with OpenSSL >= 3.5); use 'noble' or 'auto'",
        );
      }
      return node;
    }
    case 'webcrypto': {
      const web = webcryptoBackend();
      if (!web) {
        throw new Error(
          webcryptoDetected()
            ? "the 'webcrypto' ML-DSA backend is not available on this runtime: its WebCrypto has no ML-DSA with context strings; use 'noble' or 'auto'"
            : "the 'webcrypto' ML-DSA backend is detected asynchronously: await detectBackends() before selecting it",
        );
      }
      return web;
    }
    default:
      throw new TypeError(`unknown ML-DSA backend preference: ${String(preference)} (expected 'auto', 'noble', 'node' or 'webcrypto')`);
  }
}

function envPreference(): BackendPreference {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  let raw: string | undefined;
  try {
    raw = env?.[BACKEND_ENV_VAR];
  } catch {
    raw = undefined; // e.g. Deno without --allow-env throws on access
  }
  const value = raw?.trim().toLowerCase();
  if (!value) return 'auto';
  if (value === 'auto' || value === 'noble' || value === 'node' || value === 'webcrypto') return value;
  throw new Error(`${BACKEND_ENV_VAR}=${raw} is not a backend: expected 'auto', 'noble', 'node' or 'webcrypto'`);
}

let current: CryptoBackend | undefined;
/** The default was chosen by `'auto'`: `detectBackends()` chooses it again. */
let currentIsAuto = false;

/** The process-wide default backend: chosen once, lazily, from `PQC_MCP_BACKEND` (else `'auto'`). */
export function defaultBackend(): CryptoBackend {
  if (current === undefined) {
    const preference = envPreference();
    current = selectBackend(preference);
    currentIsAuto = preference === 'auto';
  }
  return current;
}

/** Replaces the process-wide default; returns the backend now in use. */
export function setDefaultBackend(preference: BackendPreference): CryptoBackend {
  current = selectBackend(preference);
  currentIsAuto = preference === 'auto';
  return current;
}

/** Names of the backends available on this runtime, fastest first, e.g. `['node', 'noble']`. */
export function availableBackends(): string[] {
  const names: string[] = [];
  if (nodeBackend()) names.push('node');
  if (webcryptoBackend()) names.push('webcrypto');
  names.push('noble');
  return names;
}

/**
 * Finishes backend detection on this runtime (once; later calls are cheap) and resolves the names of the available
 * backends, fastest first. Where the `node` backend exists WebCrypto is not probed (on Node it is the same OpenSSL,
 * and probing prints an ExperimentalWarning); elsewhere WebCrypto ML-DSA is probed, and on Bun it becomes the
 * `auto` choice. A default chosen by `'auto'` before is chosen again. Call it once at start, before creating
 * identities: `await detectBackends()`.
 */
export async function detectBackends(): Promise<string[]> {
  if (!nodeBackend()) await detectWebCrypto();
  if (current !== undefined && currentIsAuto) current = selectBackend('auto');
  return availableBackends();
}
