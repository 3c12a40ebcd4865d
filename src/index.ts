/** Ferry's public library API. Everything exported here is supported. */
export { createServer, FtpServer } from './server/server.js';
export type { FtpServerOptions } from './server/options.js';
export type { ConnectionOptions } from './server/server.js';
export type { TlsOptions, TlsCredentials, TlsPolicy } from './tls/options.js';
export { createSelfSignedCertificate, type SelfSignedOptions, type CertificatePair } from './tls/self-signed.js';
export { parsePortRange } from './server/options.js';
export type { PortRange } from './data/passive.js';
export type { PassiveAddressRule, PassiveAddressSetting } from './data/passive-address.js';

export type { Storage, StorageCapabilities, StorageWritable, FileInfo, FileType, ReadOptions, WriteOptions } from './storage/types.js';
export type { HashAlgorithm } from './protocol/hash.js';
export { LocalStorage } from './storage/local.js';
export { MemoryStorage } from './storage/memory.js';
// S3Storage loads the AWS SDK on first use only: importing it costs nothing until a session touches S3.
export { S3Storage, type S3StorageOptions } from './storage/s3.js';
// Storage usage (bytes, regular files under a root), as quotas count a home: server.usage(name) has the live figures.
export { storageUsage } from './limits/usage.js';
export type { Usage, UserUsage } from './limits/quota-ledger.js';

export type { Account, AccountLimits, Authenticator, AuthRequest, ClientCertificate, LoginRefusal, Permission } from './auth/types.js';
export { READ_PERMISSIONS, ALL_PERMISSIONS } from './auth/types.js';
export { AnonymousAuthenticator, type AnonymousOptions } from './auth/anonymous.js';
export { UserListAuthenticator, ChainAuthenticator, type ListedUser, type UserListOptions } from './auth/user-list.js';
export { HttpAuthenticator, type HttpAuthOptions } from './auth/http-hook.js';
export { hashPassword, verifyPassword, VerificationCache } from './auth/password.js';
export { parsePermissions, directoryPermissions, PermissionSpecError } from './auth/permissions.js';

export { FerryError, ErrorCodes, type ErrorCode, type FtpReply, replyForError } from './errors.js';
export type { ServerEvents, SessionInfo, UserInfo, TransferInfo, UploadInfo, BanInfo, UnbanInfo } from './observability/events.js';
// Awaited hooks (server.hook): see docs/events.md.
export type { Hook, HookAnswer, HookName, HookRequests, HookRewrites, HookSession, UploadMode } from './server/hooks.js';
export type { Defender, DefenderOptions, DefenderScores, Offence, Verdict } from './limits/defender.js';
export type { Logger } from './observability/logger.js';
// Diagnostics channels (node:diagnostics_channel) for logs, metrics and admin tools: see docs/events.md.
export { channels } from './observability/channels.js';
export type * from './observability/channels.js';
// Prometheus metrics fed from those channels, and an HTTP listener to serve them: see docs/configuration.md, "Metrics".
export { createMetrics, type MetricsOptions, type FerryMetrics } from './observability/metrics-api.js';
export { MetricsListener, type MetricsListenerOptions, type MetricsSource } from './server/metrics-listener.js';
// Commands of your own (new verbs, SITE and OPTS rows): see docs/events.md.
export type { CommandSpec, CommandContext } from './session/command.js';
export type { Session } from './session/session.js';
