import type { Socket } from 'node:net';

/** A data connection being set up by PASV/EPSV (passive) or PORT/EPRT (active). */
export interface DataChannel {
  /** Resolve with the connected socket; reject on timeout or abort. */
  open(signal: AbortSignal): Promise<Socket>;
  /** Release the listener and any socket. Idempotent. */
  close(): void;
}
