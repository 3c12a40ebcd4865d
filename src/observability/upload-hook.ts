/**
 * The pre-upload HTTP hook (`hooks.beforeUpload` in the config): before an
 * upload opens its storage, its request (docs/events.md, beforeUpload) is
 * POSTed as JSON to the operator's URL, signed as webhooks are
 * (X-Ferry-Signature). The answer decides:
 *
 *   2xx, empty or {"allow": true}           the upload goes on
 *   2xx, {"allow": false, "reason": "..."}  refused: the client gets 550 and the reason
 *   anything else (other status, bad JSON, no answer within timeoutMs)
 *                                           the hook throws: the server answers 451
 *                                           "try again later" (fails closed)
 */
import { signedHeaders, urlForLogs } from './webhooks.js';

export interface UploadHookTarget {
  url: string;
  secret: string | null;
  timeoutMs: number;
}

/** What a beforeUpload hook returns: nothing (go on) or a refusal. */
type UploadVerdict = undefined | { deny: string };

/** An answer is a small JSON object: a service that sends more is not one we understand, and must not fill memory. */
const MAX_ANSWER_BYTES = 64 * 1024;

async function readCapped(response: Response, max: number, url: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of response.body ?? []) {
    length += chunk.length;
    if (length > max) {
      await response.body?.cancel().catch(() => undefined);
      throw new Error(`beforeUpload hook ${urlForLogs(url)} answered more than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Ask the hook about `request` (see above); throws when it cannot say. */
export async function askUploadHook(target: UploadHookTarget, request: object): Promise<UploadVerdict> {
  const body = JSON.stringify(request);
  const response = await fetch(target.url, {
    method: 'POST',
    headers: signedHeaders(body, target.secret, { 'x-ferry-event': 'beforeUpload' }),
    body,
    signal: AbortSignal.timeout(target.timeoutMs),
    redirect: 'manual',
  });
  if (response.status < 200 || response.status > 299) {
    await response.body?.cancel();
    throw new Error(`beforeUpload hook ${urlForLogs(target.url)} answered HTTP ${response.status}`);
  }
  const text = await readCapped(response, MAX_ANSWER_BYTES, target.url);
  if (text.trim() === '') return undefined;
  let answer: { allow?: unknown; reason?: unknown } | null;
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    throw new Error(`beforeUpload hook ${urlForLogs(target.url)} answered something other than JSON`);
  }
  if (answer?.allow === true) return undefined;
  if (answer?.allow !== false) throw new Error(`beforeUpload hook ${urlForLogs(target.url)} answered without "allow": true or false`);
  // The server makes it one line of at most 200 characters (server/hooks.ts).
  return { deny: typeof answer.reason === 'string' && answer.reason.trim() !== '' ? answer.reason : 'Upload refused.' };
}
