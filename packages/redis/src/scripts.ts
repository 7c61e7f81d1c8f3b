/**
 * The Lua scripts that make each store operation atomic on the Redis server. Every script runs whole or not at all,
 * so two server instances racing on the same session, nonce or session slot see one consistent order.
 */
import { createHash } from 'node:crypto';

/** A script with its SHA1 (for EVALSHA). */
export interface LuaScript {
  readonly source: string;
  readonly sha1: string;
}

function script(source: string): LuaScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

/**
 * Opens a session unless the live-session limit is reached.
 * KEYS: live ZSET (session id -> expiresAt), the session key.
 * ARGV: now (ms), expiresAt (ms), maxSessions, record JSON, session key TTL (ms), session id.
 * Returns 1 (opened), 0 (limit reached), -1 (the session id exists already).
 */
export const CREATE_SESSION = script(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5], 'NX') then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[6])
local want = tonumber(ARGV[5])
if redis.call('PTTL', KEYS[1]) < want then redis.call('PEXPIRE', KEYS[1], want) end
return 1
`);

/**
 * Records a message nonce in a session's bounded window.
 * KEYS: the session's nonce ZSET (nonce -> signed timestamp), its floor key, the session key.
 * ARGV: nonce, signed timestamp (ms), cutoff (ms: now - ttl; older timestamps can no longer be fresh),
 *       window TTL (ms), per-session cap.
 * Returns 1 (new: recorded), 0 (seen before), -1 (not newer than the floor: cannot be proven fresh),
 *         -2 (no such session).
 *
 * The window keeps every accepted nonce whose timestamp is above the floor. Past the cap the nonces with the lowest
 * timestamps are dropped and the floor rises to the highest timestamp dropped, so a dropped nonce can never be
 * accepted again: a message not newer than the floor is refused.
 */
export const RECORD_NONCE = script(`
if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end
local ts = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local floor = redis.call('GET', KEYS[2])
if floor and ts <= tonumber(floor) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local max = tonumber(ARGV[5])
local count = redis.call('ZCARD', KEYS[1])
if count > max then
  local popped = redis.call('ZPOPMIN', KEYS[1], count - max)
  local top = popped[#popped]
  if not floor or tonumber(top) > tonumber(floor) then redis.call('SET', KEYS[2], top, 'PX', ARGV[4]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`);

/**
 * Ends a session: its record, nonces and floor, and its slot in the live set.
 * KEYS: live ZSET, session key, nonce ZSET, floor key. ARGV: session id.
 */
export const DELETE_SESSION = script(`
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`);
