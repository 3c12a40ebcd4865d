/**
 * The bound on hashes running at once (`limits.maxConcurrentHashes`): HASH
 * and the X* commands read whole files, and a few clients asking for the
 * SHA-512 of large files could otherwise keep the disk and the CPU busy
 * for everyone (draft-bryan-ftpext-hash-02 §6).
 *
 * Counted per server in each process (each cluster worker has its own
 * count): a hash runs in the process of its session. Over the bound the
 * command is refused at once with 450 (§3.5: "busy ... inviting the
 * client to retry"), rather than queued: a queue would hold the client's
 * command for an unknown time with no reply, and clients retry a 450.
 */
const running = new WeakMap<object, { count: number }>();

/**
 * Take one of `max` slots of `owner` (the server); returns the release
 * function (idempotent), or null when all are taken. `max` is read at
 * each call, so a reload that changes it applies to the next hash.
 */
export function takeHashSlot(owner: object, max: number): (() => void) | null {
  let state = running.get(owner);
  if (!state) running.set(owner, (state = { count: 0 }));
  if (state.count >= max) return null;
  state.count++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    state.count--;
  };
}
