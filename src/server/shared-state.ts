/**
 * The shared objects a server uses (see shared.ts): one field per policy
 * that must hold across every process of the server.
 */
import { QuotaLedger } from '../limits/quota-ledger.js';
import { RateService } from '../limits/rates.js';
import { UserSessions } from '../limits/user-sessions.js';
import { fromPrimary, local, type Shared } from './shared.js';

export interface SharedState {
  /** Sessions logged in per user (maxSessions). */
  sessions: Shared<UserSessions>;
  /** Storage used per user, and what uploads in flight reserved (quotaBytes, quotaFiles). */
  quotas: Shared<QuotaLedger>;
  /** Bandwidth leases per rate (the server's per direction, each user's): see limits/rates.ts. */
  rates: Shared<RateService>;
}

/** The objects a cluster primary hosts for its workers, or a single process keeps for itself. */
export function createSharedObjects(): { [K in keyof SharedState]: object } {
  return { sessions: new UserSessions(), quotas: new QuotaLedger(), rates: new RateService() };
}

/** `given` completed with local objects for the parts it lacks (one process). */
export function completeSharedState(given: Partial<SharedState>): SharedState {
  const made = createSharedObjects();
  return {
    sessions: given.sessions ?? local(made.sessions as UserSessions),
    quotas: given.quotas ?? local(made.quotas as QuotaLedger),
    rates: given.rates ?? local(made.rates as RateService),
  };
}

/** In a cluster worker: proxies to the objects the primary hosts (createSharedObjects, hostForWorkers). */
export function workerSharedState(): SharedState {
  return {
    sessions: fromPrimary<UserSessions>('sessions'),
    quotas: fromPrimary<QuotaLedger>('quotas'),
    rates: fromPrimary<RateService>('rates'),
  };
}
