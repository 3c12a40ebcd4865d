/**
 * POSTs an event as JSON to an operator's URL (`hooks.webhooks` in the
 * config), signed so the receiver can tell it came from this server:
 *
 *   X-Ferry-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>
 *   X-Ferry-Event:     file-received
 *   X-Ferry-Delivery:  <id>   (the body's id: the same on every retry, so a
 *                              receiver can ignore a repeat it already handled)
 *
 * A delivery that fails (no answer within timeoutMs, a network error, a
 * 5xx, 408 or 429) is tried again after retryDelayMs, then twice that, and
 * so on, `retries` times; any other answer is final (2xx: delivered; 4xx:
 * the receiver refuses it, and asking again would not change that).
 */
import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HookDelivery } from './hook-event.js';
import type { Logger } from './logger.js';


/** A hook URL as logs show it: its origin only, since chat and automation services put their token in the path or query. */
export function urlForLogs(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

export interface WebhookTarget {
  url: string;
  /** The HMAC key; null: no X-Ferry-Signature header. */
  secret: string | null;
  timeoutMs: number;
  /** Attempts after the first. */
  retries: number;
  /** Pause before the first retry; each next pause doubles. */
  retryDelayMs: number;
}

/** A pause between attempts never exceeds this. */
const MAX_RETRY_DELAY_MS = 5 * 60_000;

/** `sha256=<hex>`: the X-Ferry-Signature (and beforeUpload's) value for `body`. */
export function signature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The headers of a signed JSON POST. */
export function signedHeaders(body: string, secret: string | null, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'ferry', ...extra };
  if (secret !== null) headers['x-ferry-signature'] = signature(secret, body);
  return headers;
}

export interface DeliveryOutcome {
  delivered: boolean;
  attempts: number;
  /** The last answer's status; null when none came. */
  status: number | null;
  /** Why the last attempt failed; null when delivered. */
  error: string | null;
}

const retryable = (status: number) => status >= 500 || status === 408 || status === 429;

/** Delivers `d` to `target`, retrying as above; never rejects. `stop` ends the retries (shutdown). */
export async function deliver(target: WebhookTarget, d: HookDelivery, stop?: AbortSignal): Promise<DeliveryOutcome> {
  const body = JSON.stringify(d);
  const headers = signedHeaders(body, target.secret, { 'x-ferry-event': d.event, 'x-ferry-delivery': d.id });
  let status: number | null = null;
  let error: string | null = null;
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(target.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(target.timeoutMs), redirect: 'manual' });
      status = response.status;
      await response.body?.cancel();
      if (status >= 200 && status < 300) return { delivered: true, attempts: attempt, status, error: null };
      error = `HTTP ${status}`;
      if (!retryable(status)) return { delivered: false, attempts: attempt, status, error };
    } catch (err) {
      status = null;
      error = (err as Error).name === 'TimeoutError' ? `no answer within ${target.timeoutMs} ms` : describe(err);
    }
    if (attempt > target.retries || stop?.aborted) return { delivered: false, attempts: attempt, status, error };
    const pauseMs = Math.min(target.retryDelayMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
    await sleep(pauseMs, undefined, { signal: stop }).catch(() => undefined);
  }
}

/** Delivers and logs the outcome: debug when delivered, warn otherwise. */
export async function deliverLogged(target: WebhookTarget, d: HookDelivery, logger: Logger, stop?: AbortSignal): Promise<DeliveryOutcome> {
  const started = performance.now();
  const outcome = await deliver(target, d, stop);
  const fields = { event: d.event, eventId: d.id, url: urlForLogs(target.url), ...outcome, durationMs: Math.round(performance.now() - started) };
  if (outcome.delivered) logger.debug(fields, 'webhook delivered');
  else logger.warn(fields, 'webhook not delivered');
  return outcome;
}

/** fetch's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ...). */
function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
