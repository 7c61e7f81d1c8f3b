/** The protocol's normative test vectors (docs/vectors/) and the document itself, read from the repository. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Algorithm } from '@pqc-mcp/core';

/** The repository's root folder. */
export const REPO_ROOT = path.resolve(__dirname, '../../..');

/** The folder of the normative vectors, beside docs/PROTOCOL.md. */
export const VECTORS_DIR = path.join(REPO_ROOT, 'docs', 'vectors');

/** The text of docs/PROTOCOL.md. */
export function readProtocolDoc(): string {
  return readFileSync(path.join(REPO_ROOT, 'docs', 'PROTOCOL.md'), 'utf8');
}

/** A vector file of docs/vectors/, parsed. */
export function readVector<T>(name: string): T {
  return JSON.parse(readFileSync(path.join(VECTORS_DIR, name), 'utf8')) as T;
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

export interface CanonicalVector {
  input: string;
  canonical?: string;
  sha3_256?: string;
  error?: string;
}

/** The instant the vectors were signed at. */
export const VECTOR_TIME = Date.parse('2026-11-25T12:00:00.123Z');
