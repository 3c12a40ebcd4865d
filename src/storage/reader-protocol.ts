/**
 * What the event loop and the reader threads (reader-worker.ts) say to each
 * other: shared by both sides so the messages are typed at both ends.
 */
import type { JailRoot } from './jail.js';

/** Numbers per entry in a packed page: kind, size, mtimeMs, mode, dev, ino. */
export const FIELDS = 6;

/** The first number of each packed entry. */
export const EntryKind = { Error: -1, Gone: 0, File: 1, Dir: 2, Symlink: 3, Other: 4 } as const;

/** What readSmallFile found. */
export type SmallFile =
  | { kind: 'data'; data: Uint8Array; length: number }
  | { kind: 'large' }
  | { kind: 'dir' }
  | { kind: 'special' }
  | { kind: 'offset'; size: number }
  | { kind: 'changed' };

export type Request =
  | { op: 'open'; root: JailRoot; segments: string[] }
  | { op: 'read'; max: number }
  | { op: 'close' }
  | { op: 'small'; root: JailRoot; segments: string[]; start: number; max: number };

/** A system error (code ENOENT, ...) or a FerryError (code FERRY_ERR_...), as it crosses threads. */
export interface ErrorReply {
  message: string;
  code?: string;
}

export type Reply = {
  id: number;
  error?: ErrorReply;
  names?: string;
  stats?: Float64Array;
  done?: boolean;
} & Partial<SmallFile>;
