import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AgentIdentity, availableBackends, type Algorithm } from '../src/index.js';

/** The shared test vectors beside the project (CI has shared/ beside the clone). */
export const SHARED_DIR = path.resolve(__dirname, '../../../../shared');

export function readVector<T>(name: string): T {
  return JSON.parse(readFileSync(path.join(SHARED_DIR, 'vectors', name), 'utf8')) as T;
}

export interface VectorIdentity {
  role: 'client' | 'server';
  algorithm: Algorithm;
  seed: string;
  public_key: string;
  did: string;
}

export interface MessageVector {
  name: string;
  profile: 1 | 2;
  signer: 'client' | 'server';
  algorithm: Algorithm;
  wire: string;
  signing_input?: string;
  digest?: string;
  expect: string;
}

export interface HandshakeVector {
  name: string;
  algorithm: Algorithm;
  request: string;
  request_signing_input: string;
  request_digest?: string;
  response?: string;
  response_signing_input?: string;
  expect: string;
}

export interface ProtocolVectors {
  identities: VectorIdentity[];
  messages: MessageVector[];
  handshakes: HandshakeVector[];
}

/** The instant the vectors were signed at. */
export const VECTOR_TIME = Date.parse('2026-11-25T12:00:00.123Z');

/** Backends this runtime has, by name. */
export const BACKENDS = availableBackends() as ('noble' | 'node')[];

/** Fixed-seed identities for tests (never random: failures must reproduce). */
export function seededIdentity(byte: number, algorithm: Algorithm = 'ML-DSA-65', name = `agent-${byte}`): AgentIdentity {
  return AgentIdentity.fromSeed(new Uint8Array(32).fill(byte), { algorithm, name });
}
