/**
 * What a daemon hook receives about an event: one JSON document (a
 * command's standard input, a webhook's body) and, for commands, the same
 * fields as FERRY_* environment variables.
 */
import { randomUUID } from 'node:crypto';
import type { ServerEvents } from './events.js';

export type EventName = keyof ServerEvents;

export interface HookDelivery {
  /** Unique per event and hook; the same across a webhook's retries (X-Ferry-Delivery), for idempotent receivers. */
  id: string;
  event: EventName;
  /** ISO time the event happened. */
  time: string;
  /** The event's payload, as the library emits it (docs/events.md). */
  info: Record<string, unknown>;
}

export function delivery(event: EventName, info: unknown, id: string = randomUUID()): HookDelivery {
  // The 'error' event carries an Error, which JSON would turn into {}.
  const fields = info instanceof Error ? { message: info.message } : (info as Record<string, unknown>);
  return { id, event, time: new Date().toISOString(), info: fields };
}

/** camelCase -> FERRY_CAMEL_CASE (sessionId -> FERRY_SESSION_ID, sha256 -> FERRY_SHA256). */
export function envName(field: string): string {
  return `FERRY_${field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/**
 * FERRY_EVENT, FERRY_EVENT_ID, FERRY_TIME, and one variable per field of
 * the payload whose value is a string, number or boolean (null and absent
 * fields are left out, so `${FERRY_USERNAME-}` tells them apart from '').
 */
export function eventEnvironment(d: HookDelivery): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(d.info)) {
    // A NUL (a user name can carry one) cannot be in an environment value: spawn would refuse the whole command.
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') env[envName(key)] = String(value).replaceAll('\0', '\uFFFD');
  }
  return { ...env, FERRY_EVENT: d.event, FERRY_EVENT_ID: d.id, FERRY_TIME: d.time };
}

/** Every event name, for the config's validation (a Record, so that a new event fails the typecheck here until added). */
const NAMES: Record<EventName, true> = {
  connect: true,
  login: true,
  'login-failed': true,
  'file-received': true,
  'file-sent': true,
  'upload-aborted': true,
  'download-aborted': true,
  delete: true,
  rename: true,
  mkdir: true,
  rmdir: true,
  logout: true,
  disconnect: true,
  ban: true,
  unban: true,
  error: true,
};
export const EVENT_NAMES = Object.keys(NAMES) as EventName[];

/** Events the cluster primary emits (the defender lives there); workers emit the rest. */
export const PRIMARY_EVENTS: ReadonlySet<EventName> = new Set<EventName>(['ban', 'unban']);
