/**
 * S3 errors → Ferry error codes, in one place. `replyForError` (errors.ts)
 * then turns the code into the FTP reply, so S3 knows nothing of FTP.
 *
 * The message keeps what an operator needs to find the request in the
 * provider's logs (operation, S3 error name, HTTP status, request id); it is
 * logged, never sent to the client.
 *
 * Retries happen before we get here: the SDK retries throttling (SlowDown,
 * 503), 5xx and connection failures with backoff (`maxAttempts`). What still
 * fails after that is UNAVAILABLE (451): the session stays, the client may
 * retry later.
 */
import { ErrorCodes, FerryError, type ErrorCode } from '../errors.js';

interface S3ErrorLike {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; requestId?: string; extendedRequestId?: string };
}

const byName: Record<string, ErrorCode> = {
  NoSuchKey: ErrorCodes.NOT_FOUND,
  NotFound: ErrorCodes.NOT_FOUND,
  InvalidRange: ErrorCodes.INVALID_OFFSET,
  EntityTooLarge: ErrorCodes.FILE_TOO_LARGE,
  KeyTooLongError: ErrorCodes.INVALID_NAME,
  AccessDenied: ErrorCodes.ACCESS_DENIED,
  AllAccessDisabled: ErrorCodes.ACCESS_DENIED,
  // The bucket or the credentials are wrong: nothing the FTP client can fix.
  NoSuchBucket: ErrorCodes.MISCONFIGURED,
  InvalidAccessKeyId: ErrorCodes.MISCONFIGURED,
  SignatureDoesNotMatch: ErrorCodes.MISCONFIGURED,
  PermanentRedirect: ErrorCodes.MISCONFIGURED,
  AuthorizationHeaderMalformed: ErrorCodes.MISCONFIGURED,
  CredentialsProviderError: ErrorCodes.MISCONFIGURED,
  // Still failing after the SDK's retries.
  SlowDown: ErrorCodes.UNAVAILABLE,
  Throttling: ErrorCodes.UNAVAILABLE,
  ThrottlingException: ErrorCodes.UNAVAILABLE,
  RequestLimitExceeded: ErrorCodes.UNAVAILABLE,
  ServiceUnavailable: ErrorCodes.UNAVAILABLE,
  InternalError: ErrorCodes.UNAVAILABLE,
  RequestTimeout: ErrorCodes.UNAVAILABLE,
  TimeoutError: ErrorCodes.UNAVAILABLE,
  // An upload's multipart upload was aborted under it (another node, a lifecycle rule).
  NoSuchUpload: ErrorCodes.ABORTED,
};

/** Network failures on the way to the endpoint: it is down or unreachable. */
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

function codeFor(err: S3ErrorLike): ErrorCode | undefined {
  const named = err.name ? byName[err.name] : undefined;
  if (named) return named;
  if (err.code && networkCodes.has(err.code)) return ErrorCodes.UNAVAILABLE;
  const status = err.$metadata?.httpStatusCode;
  if (status === 404) return ErrorCodes.NOT_FOUND;
  if (status === 403) return ErrorCodes.ACCESS_DENIED;
  if (status === 416) return ErrorCodes.INVALID_OFFSET;
  if (status === 429 || (status !== undefined && status >= 500)) return ErrorCodes.UNAVAILABLE;
  return undefined;
}

/**
 * Translate what the SDK (or a response body stream) threw into a FerryError.
 * Errors we do not recognise stay as they are: the session logs them in
 * full and answers a generic 451.
 */
export function fromS3Error(err: unknown, operation: string, key: string): unknown {
  if (err instanceof FerryError || typeof err !== 'object' || err === null) return err;
  const s3 = err as S3ErrorLike;
  const code = codeFor(s3);
  if (!code) return err;
  const meta = s3.$metadata;
  const details = [
    `${operation} ${key}`,
    s3.name && s3.name !== 'Error' ? s3.name : s3.code,
    meta?.httpStatusCode ? `HTTP ${meta.httpStatusCode}` : undefined,
    meta?.requestId ? `request id ${meta.requestId}` : undefined,
    meta?.extendedRequestId ? `host id ${meta.extendedRequestId}` : undefined,
  ];
  return new FerryError(code, `S3: ${details.filter(Boolean).join(', ')}`, { cause: err });
}

/** Run one S3 call; whatever it throws comes out translated (see fromS3Error). */
export async function s3Call<T>(operation: string, key: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw fromS3Error(err, operation, key);
  }
}

/** True when S3 said the key (or the bucket) is not there. */
export function isNotFound(err: unknown): boolean {
  const s3 = err as S3ErrorLike | null;
  return s3?.name === 'NoSuchKey' || s3?.name === 'NotFound' || (s3?.$metadata?.httpStatusCode === 404 && s3.name !== 'NoSuchBucket');
}

/** True when S3 refused a conditional request (If-None-Match, x-amz-copy-source-if-match): 412. */
export function isPreconditionFailed(err: unknown): boolean {
  const s3 = err as S3ErrorLike | null;
  return s3?.name === 'PreconditionFailed' || s3?.$metadata?.httpStatusCode === 412;
}
