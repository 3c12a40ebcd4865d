/**
 * The `--s3*` flags of `ferry serve`: serve a bucket instead of a folder.
 * Credentials come from the AWS default chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, profiles, SSO, instance and container roles), never
 * from the command line.
 */
import { InvalidArgumentError } from 'commander';
import type { StorageAt } from '../config/build.js';
import type { Logger } from '../observability/logger.js';
import { S3Storage } from '../storage/s3.js';

export interface S3Flags {
  s3?: { bucket: string; prefix: string };
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  s3SocketTimeout?: number;
}

/** s3://BUCKET[/PREFIX]; the prefix may hold {username} for one folder per user. */
export function parseS3Url(value: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(value);
  if (!match) throw new InvalidArgumentError('expected s3://BUCKET or s3://BUCKET/PREFIX, e.g. s3://camera-drops/incoming');
  return { bucket: match[1]!, prefix: match[2] ?? '' };
}

export function parseEndpoint(value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) throw new InvalidArgumentError('expected an http:// or https:// URL.');
  return value;
}

/** What the banner says is served. */
export function s3Location(flags: S3Flags): string | null {
  return flags.s3 ? `s3://${flags.s3.bucket}/${flags.s3.prefix}` : null;
}

/**
 * The storage of each account when --s3 is given: one S3 client for the
 * process; a {username} prefix gives each user their own, and a home
 * (users file, anonymous.home) is a sub-prefix of it.
 */
export function s3StorageFromFlags(flags: S3Flags, logger: Logger): StorageAt | undefined {
  if (!flags.s3) return undefined;
  const bucket = new S3Storage({
    bucket: flags.s3.bucket,
    prefix: flags.s3.prefix,
    endpoint: flags.s3Endpoint,
    region: flags.s3Region,
    // Self-hosted stores (MinIO, Ceph) want path-style URLs; AWS prefers virtual-hosted ones.
    forcePathStyle: flags.s3PathStyle ?? flags.s3Endpoint !== undefined,
    socketTimeoutMs: flags.s3SocketTimeout,
    logger,
  });
  return async (home, username) => bucket.forUser(username).at(home);
}
