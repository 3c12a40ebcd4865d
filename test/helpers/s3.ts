/**
 * An S3 bucket for one test: a new bucket on the test process's Ceph cluster
 * (ceph.ts), optionally behind a FaultProxy (fault-proxy.ts) so that the
 * test can stop, pause, slow or fail the endpoint Ferry talks to. The plain
 * client `raw` always goes straight to the gateway, so a test can look at
 * the bucket while Ferry's way there is broken.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3StorageOptions } from '../../src/index.js';
import { cephClient, createBucket, pendingUploads, sharedCeph } from './ceph.js';
import { FaultProxy } from './fault-proxy.js';
import type { Cleanup } from './server.js';

export interface TestS3 {
  /** What Ferry uses: the proxy's address when there is one, else the gateway's. */
  endpoint: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** A client straight to the gateway (never through the proxy). */
  raw: S3Client;
  proxy: FaultProxy | null;
  /** Multipart uploads started in the bucket and neither completed nor aborted (ListMultipartUploads). */
  pendingUploads(): Promise<number>;
  /** S3Storage options for this bucket, plus `extra`. */
  options(extra?: Partial<S3StorageOptions>): S3StorageOptions;
}

export async function startS3(t: Cleanup, { proxy: withProxy = false } = {}): Promise<TestS3> {
  const ceph = await sharedCeph();
  const raw = cephClient(ceph);
  t.after(async () => raw.destroy());
  const bucket = await createBucket(ceph, raw);
  let proxy: FaultProxy | null = null;
  if (withProxy) {
    proxy = new FaultProxy(Number(new URL(ceph.endpoint).port));
    t.after(() => proxy!.stop());
    await proxy.start();
  }
  const endpoint = proxy?.endpoint ?? ceph.endpoint;
  const credentials = { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey };
  return {
    endpoint,
    bucket,
    credentials,
    raw,
    proxy,
    pendingUploads: () => pendingUploads(raw, bucket),
    options: (extra = {}) => ({ bucket, endpoint, forcePathStyle: true, credentials, ...extra }),
  };
}
