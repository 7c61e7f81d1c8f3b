/** Session records as shared stores keep them: JSON text, read back strictly. */
import { isAlgorithm } from '../crypto/algorithms.js';
import type { SessionRecord } from './types.js';

const HEX32 = /^[0-9a-f]{32}$/;

function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The JSON text a shared store keeps for a record (fields in a fixed order). */
export function serializeSessionRecord(record: SessionRecord): string {
  const { sessionId, profile, peerDid, peerAlgorithm, peerPublicKey, localDid, createdAt, expiresAt, endedAt } = record;
  return JSON.stringify({ sessionId, profile, peerDid, peerAlgorithm, peerPublicKey, localDid, createdAt, expiresAt, endedAt });
}

/** A record read back from a shared store; throws when the text is not one (a corrupt or foreign entry). */
export function parseSessionRecord(text: string): SessionRecord {
  const r = JSON.parse(text) as Record<string, unknown> | null;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    typeof r.sessionId === 'string' &&
    HEX32.test(r.sessionId) &&
    (r.profile === 1 || r.profile === 2) &&
    typeof r.peerDid === 'string' &&
    isAlgorithm(r.peerAlgorithm) &&
    typeof r.peerPublicKey === 'string' &&
    typeof r.localDid === 'string' &&
    finite(r.createdAt) &&
    finite(r.expiresAt) &&
    (r.endedAt === undefined || r.endedAt === null || finite(r.endedAt));
  if (!ok) throw new Error('malformed session record');
  const record: SessionRecord = {
    sessionId: r.sessionId as string,
    profile: r.profile as 1 | 2,
    peerDid: r.peerDid as string,
    peerAlgorithm: r.peerAlgorithm as SessionRecord['peerAlgorithm'],
    peerPublicKey: r.peerPublicKey as string,
    localDid: r.localDid as string,
    createdAt: r.createdAt as number,
    expiresAt: r.expiresAt as number,
  };
  if (finite(r.endedAt)) record.endedAt = r.endedAt;
  return record;
}

/** When a store may forget a record: its expiry, and at least `retentionMs` after it ended or expired (§6). */
export function recordRetainedUntil(record: SessionRecord, retentionMs: number): number {
  const ended = record.endedAt ?? record.expiresAt;
  return Math.max(record.expiresAt, Math.min(ended, record.expiresAt) + retentionMs);
}
