/**
 * Choosing the ML-DSA backend.
 *
 * The process-wide default is chosen lazily, on the first `defaultBackend()` call, from the environment variable
 * `PQC_MCP_BACKEND` (read through `globalThis.process?.env`, so runtimes without `process` are fine):
 *   - unset, empty or `auto`: the fastest available backend (`node` when `nodeBackend()` exists, else `noble`);
 *   - `noble`: always the pure-JS backend;
 *   - `node`: the native backend, and an error if this runtime has none (so CI can force and prove it).
 * Any other value is an error. `setDefaultBackend` overrides the choice at any time (tests, applications).
 */
import { nobleBackend } from './noble.js';
import { nodeBackend } from './node.js';
import type { CryptoBackend } from './types.js';

/** A backend by name (`auto` = fastest available), or a backend object used as is. */
export type BackendPreference = 'auto' | 'noble' | 'node' | CryptoBackend;

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
 * exists, else `noble`). Throws an `Error` if `'node'` is asked for on a runtime without native ML-DSA, and a
 * `TypeError` for an unknown preference.
 */
export function selectBackend(preference: BackendPreference = 'auto'): CryptoBackend {
  if (isBackend(preference)) return preference;
  switch (preference) {
    case 'auto':
      return nodeBackend() ?? nobleBackend;
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
    default:
      throw new TypeError(`unknown ML-DSA backend preference: ${String(preference)} (expected 'auto', 'noble' or 'node')`);
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
  if (value === 'auto' || value === 'noble' || value === 'node') return value;
  throw new Error(`${BACKEND_ENV_VAR}=${raw} is not a backend: expected 'auto', 'noble' or 'node'`);
}

let current: CryptoBackend | undefined;

/** The process-wide default backend: chosen once, lazily, from `PQC_MCP_BACKEND` (else `'auto'`). */
export function defaultBackend(): CryptoBackend {
  return (current ??= selectBackend(envPreference()));
}

/** Replaces the process-wide default; returns the backend now in use. */
export function setDefaultBackend(preference: BackendPreference): CryptoBackend {
  current = selectBackend(preference);
  return current;
}

/** Names of the backends available on this runtime, fastest first, e.g. `['node', 'noble']`. */
export function availableBackends(): string[] {
  const names: string[] = [];
  if (nodeBackend()) names.push('node');
  names.push('noble');
  return names;
}
