/**
 * Argument checks shared by the storage backends: virtual paths, offsets and
 * write options. Backends re-check defensively what the session should
 * already guarantee, and all of them must refuse the same things the same way.
 */
import { ErrorCodes, FerryError } from '../errors.js';
import type { WriteOptions } from './types.js';

/**
 * Split a normalised virtual path into segments ('/' → []), refusing NUL
 * bytes, relative paths and empty, '.' or '..' segments with INVALID_NAME.
 * `checkSegment` adds a backend's own rules; it runs on each segment after
 * the common checks and throws to refuse it.
 */
export function parsePath(path: string, checkSegment?: (segment: string, path: string) => void): string[] {
  if (typeof path !== 'string' || path.includes('\0')) {
    throw new FerryError(ErrorCodes.INVALID_NAME, 'path contains a NUL byte');
  }
  if (!path.startsWith('/')) throw new FerryError(ErrorCodes.INVALID_NAME, `path is not absolute: ${path}`);
  if (path === '/') return [];
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new FerryError(ErrorCodes.INVALID_NAME, `path is not normalised: ${path}`);
    }
    checkSegment?.(segment, path);
  }
  return segments;
}

/** A read or write offset: absent → 0; negative or not a safe integer → INVALID_OFFSET. */
export function checkOffset(start: number | undefined): number {
  const value = start ?? 0;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new FerryError(ErrorCodes.INVALID_OFFSET, `invalid offset: ${String(start)}`);
  }
  return value;
}

/**
 * The checks every write() makes before touching anything: a valid offset,
 * offset excluding append and exclusive, not the root. Returns the offset.
 */
export function checkWrite(segments: readonly string[], options: WriteOptions): number {
  const start = checkOffset(options.start);
  if (options.append && start > 0) {
    throw new FerryError(ErrorCodes.INVALID_OFFSET, 'append and a start offset are exclusive');
  }
  if (options.exclusive && start > 0) {
    throw new FerryError(ErrorCodes.INVALID_OFFSET, 'an exclusive create has no data to resume');
  }
  if (segments.length === 0) throw new FerryError(ErrorCodes.IS_A_DIRECTORY, 'write to the root');
  return start;
}
