/**
 * The shared objects a server uses (see shared.ts): one field per policy
 * that must hold across every process of the server.
 */
import { Defender, type DefenderHooks, type DefenderOptions, type DefenderSettings } from '../limits/defender.js';
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
  /** Scores and bans per client address. */
  defender: Shared<Defender>;
}

/** What the shared objects are made with: the defender's settings, and who hears its bans. */
export interface SharedSettings {
  defender?: DefenderOptions | DefenderSettings;
  defenderHooks?: DefenderHooks;
}

/** The objects a cluster primary hosts for its workers, or a single process keeps for itself. */
export function createSharedObjects(settings: SharedSettings = {}): { [K in keyof SharedState]: object } {
  return { sessions: new UserSessions(), quotas: new QuotaLedger(), rates: new RateService(), defender: new Defender(settings.defender, settings.defenderHooks) };
}

/** `given` completed with local objects for the parts it lacks (one process). */
export function completeSharedState(given: Partial<SharedState>): SharedState {
  return {
    sessions: given.sessions ?? local(new UserSessions()),
    quotas: given.quotas ?? local(new QuotaLedger()),
    rates: given.rates ?? local(new RateService()),
    defender: given.defender ?? local(new Defender(undefined)),
  };
}

/** In a cluster worker: proxies to the objects the primary hosts (createSharedObjects, hostForWorkers). */
export function workerSharedState(): SharedState {
  return {
    sessions: fromPrimary<UserSessions>('sessions'),
    quotas: fromPrimary<QuotaLedger>('quotas'),
    rates: fromPrimary<RateService>('rates'),
    defender: fromPrimary<Defender>('defender'),
  };
}
