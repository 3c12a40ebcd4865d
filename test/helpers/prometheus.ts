/**
 * Scraping a metrics endpoint in tests: fetch it and read samples back by
 * name and exact label set, as Prometheus would.
 */
import assert from 'node:assert/strict';

export interface Scrape {
  text: string;
  /** The sample with exactly these labels; undefined when absent. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every sample of `name` (with any labels) as [labels, value]. */
  samples(name: string): Array<[Record<string, string>, number]>;
}

export function parseMetrics(text: string): Scrape {
  const samples = new Map<string, Array<[Record<string, string>, number]>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    const list = samples.get(match[1]!) ?? [];
    list.push([labels, Number(match[3])]);
    samples.set(match[1]!, list);
  }
  const same = (a: Record<string, string>, b: Record<string, string>) => Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);
  return {
    text,
    value: (name, labels = {}) => samples.get(name)?.find(([l]) => same(l, labels))?.[1],
    samples: (name) => samples.get(name) ?? [],
  };
}

/** GET the endpoint (bounded) and parse it; fails on anything but 200 with Prometheus's text type. */
export async function scrape(url: string, timeoutMs = 10_000): Promise<Scrape> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}
