/**
 * Prometheus metrics: a prom-client registry fed from the diagnostics
 * channels (channels.ts), never from inside sessions. Independent of any
 * listener: the daemon serves it on its own HTTP listener
 * (server/metrics-listener.ts), an embedder or the admin console may serve
 * `registry.metrics()` wherever they like.
 *
 * Names carry the `ferry_` prefix and their unit (`_bytes_total`,
 * `_seconds`). Labels are small, bounded sets (a direction, a storage kind,
 * a reply code, a command verb of the table, an S3 operation): never a user
 * name, an address or a path, which would grow a series per client.
 *
 * The channels are process-wide: a registry counts every FtpServer of its
 * process, from the moment it is created (sessions already open then are not
 * in `ferry_sessions`).
 */
import client from 'prom-client';
import { passiveListenerCounts } from '../data/passive.js';
import { readerQueueDepth } from '../storage/reader-threads.js';
import { channels, type EventMessage, type LoginMessage, type ReplyMessage, type S3RequestMessage, type SessionCloseMessage, type SessionOpenMessage, type CommandMessage, type TransferEndMessage } from './channels.js';

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (CPU, memory, handles, GC, event-loop delay as `nodejs_eventloop_lag_*`). Default true. */
  processMetrics?: boolean;
}

export interface FerryMetrics {
  /** The prom-client registry: `await registry.metrics()` is the text a scrape gets. */
  readonly registry: client.Registry;
  /** Stop counting (unsubscribe from the channels); the registry keeps its last values. */
  close(): void;
}

/** Transfers last from milliseconds (a small file) to hours (a disk image over a slow link). */
const TRANSFER_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200];
/** An S3 request (its retries included): milliseconds on a LAN, seconds under throttling. */
const S3_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Create a registry and start counting what every FtpServer of this process does. */
export function createMetrics(options: MetricsOptions = {}): FerryMetrics {
  const registry = new client.Registry();
  if (options.processMetrics !== false) client.collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const sessions = new client.Gauge({ name: 'ferry_sessions', help: 'Control connections open now.', registers });
  const sessionsTotal = new client.Counter({ name: 'ferry_sessions_total', help: 'Control connections accepted (after the admission gate).', registers });
  const logins = new client.Counter({ name: 'ferry_logins_total', help: 'Logins by outcome: success, or why it failed (unknown-user, wrong-password, banned, ...).', labelNames: ['outcome'], registers });
  const commands = new client.Counter({ name: 'ferry_commands_total', help: "Commands run, by the command table's verb (SITE and OPTS subcommands as 'SITE CHMOD').", labelNames: ['verb'], registers });
  const replies = new client.Counter({ name: 'ferry_replies_total', help: 'Replies sent, by code.', labelNames: ['code'], registers });
  const quotaRefusals = new client.Counter({ name: 'ferry_quota_refusals_total', help: 'Uploads refused with 552: over a quota or the maximum file size.', registers });
  const transfers = new client.Counter({ name: 'ferry_transfers_total', help: 'Transfers (uploads, downloads, listings) ended, by direction, storage kind and outcome (completed, aborted).', labelNames: ['direction', 'storage', 'outcome'], registers });
  const bytes = new client.Counter({ name: 'ferry_transfer_bytes_total', help: 'Bytes moved on data connections, by direction and storage kind.', labelNames: ['direction', 'storage'], registers });
  const duration = new client.Histogram({ name: 'ferry_transfer_duration_seconds', help: 'How long transfers took, from the command to its end, by direction and storage kind.', labelNames: ['direction', 'storage'], buckets: TRANSFER_BUCKETS, registers });
  const bans = new client.Counter({ name: 'ferry_bans_total', help: 'Addresses banned by the defender (by score or by hand).', registers });
  const s3Requests = new client.Counter({ name: 'ferry_s3_requests_total', help: 'S3 operations sent (retries inside one), by operation.', labelNames: ['operation'], registers });
  const s3Errors = new client.Counter({ name: 'ferry_s3_request_errors_total', help: 'S3 operations that failed after their retries, by operation and error name.', labelNames: ['operation', 'error'], registers });
  const s3Duration = new client.Histogram({ name: 'ferry_s3_request_duration_seconds', help: 'How long S3 operations took, retries included, by operation.', labelNames: ['operation'], buckets: S3_BUCKETS, registers });
  new client.Gauge({
    name: 'ferry_passive_ports_open',
    help: 'Passive ports bound: waiting for a data connection, or kept idle for the next PASV.',
    registers,
    collect() {
      this.set(passiveListenerCounts().open);
    },
  });
  new client.Gauge({
    name: 'ferry_passive_ports_waiting',
    help: "Passive ports lent to a session's PASV/EPSV and waiting for its data connection.",
    registers,
    collect() {
      this.set(passiveListenerCounts().lent);
    },
  });
  new client.Gauge({
    name: 'ferry_reader_queue_depth',
    help: 'Requests waiting on the reader threads (listings, small files) of local storage.',
    labelNames: ['pool'],
    registers,
    collect() {
      const depth = readerQueueDepth();
      this.set({ pool: 'listing' }, depth.listing);
      this.set({ pool: 'small' }, depth.small);
    },
  });

  // Sessions opened while counting: one closed that was opened before must not take the gauge below zero.
  const open = new Set<string>();
  const subscriptions = [
    subscribe(channels.sessionOpen, (m: SessionOpenMessage) => {
      open.add(m.sessionId);
      sessions.set(open.size);
      sessionsTotal.inc();
    }),
    subscribe(channels.sessionClose, (m: SessionCloseMessage) => {
      if (open.delete(m.sessionId)) sessions.set(open.size);
    }),
    subscribe(channels.login, (m: LoginMessage) => logins.inc({ outcome: m.outcome })),
    subscribe(channels.command, (m: CommandMessage) => commands.inc({ verb: m.verb })),
    subscribe(channels.reply, (m: ReplyMessage) => {
      replies.inc({ code: m.code });
      // RFC 959's 552 "exceeded storage allocation": Ferry sends it only for a quota or the file-size cap.
      if (m.code === 552) quotaRefusals.inc();
    }),
    subscribe(channels.transferEnd, (m: TransferEndMessage) => {
      const labels = { direction: m.direction, storage: m.storage };
      transfers.inc({ ...labels, outcome: m.ok ? 'completed' : 'aborted' });
      bytes.inc(labels, m.bytes);
      duration.observe(labels, m.durationMs / 1000);
    }),
    subscribe(channels.event, (m: EventMessage) => {
      if (m.name === 'ban') bans.inc();
    }),
    subscribe(channels.s3Request, (m: S3RequestMessage) => {
      s3Requests.inc({ operation: m.operation });
      s3Duration.observe({ operation: m.operation }, m.durationMs / 1000);
      if (m.error !== null) s3Errors.inc({ operation: m.operation, error: m.error });
    }),
  ];
  return {
    registry,
    close: () => {
      for (const unsubscribe of subscriptions) unsubscribe();
    },
  };
}

function subscribe<T>(channel: { subscribe(fn: (m: T) => void): void; unsubscribe(fn: (m: T) => void): boolean }, fn: (m: T) => void): () => void {
  channel.subscribe(fn);
  return () => void channel.unsubscribe(fn);
}
