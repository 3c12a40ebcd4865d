/**
 * Latency histogram: log-linear buckets over microseconds, preallocated, so
 * recording is one index computation and one increment (no allocation on the
 * hot path). Values below 256 µs are exact; above, each power of two is split
 * into 128 buckets (error < 0.8 %). Histograms from several generator
 * processes merge by adding their counts.
 */
const LINEAR = 256;
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128
const MAX_EXP = 40; // 2^40 µs ≈ 12.7 days: more than any bounded run
export const HISTOGRAM_BUCKETS = LINEAR + (MAX_EXP - 8 + 1) * SUB;

export class Histogram {
  readonly counts: Float64Array;
  count = 0;
  max = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(HISTOGRAM_BUCKETS);
    if (counts) {
      for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
        const c = counts[i] ?? 0;
        this.counts[i] = c;
        this.count += c;
        if (c > 0) this.max = bucketValue(i);
      }
    }
  }

  /** Record one latency in microseconds. */
  record(us: number): void {
    this.counts[bucketIndex(us)]! += 1;
    this.count++;
    if (us > this.max) this.max = us;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    if (other.max > this.max) this.max = other.max;
  }

  /** The value (µs) at quantile q in [0, 1]; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketValue(i), this.max);
    }
    return this.max;
  }

  /** Sparse form for IPC: [index, count] pairs. */
  toSparse(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) if (this.counts[i]! > 0) out.push([i, this.counts[i]!]);
    return out;
  }

  static fromSparse(pairs: ReadonlyArray<[number, number]>, max: number): Histogram {
    const h = new Histogram();
    for (const [i, c] of pairs) {
      h.counts[i] = c;
      h.count += c;
    }
    h.max = max;
    return h;
  }
}

export function bucketIndex(us: number): number {
  const v = us < 0 ? 0 : Math.floor(us);
  if (v < LINEAR) return v;
  const exp = Math.min(MAX_EXP, v <= 0xffffffff ? 31 - Math.clz32(v) : Math.floor(Math.log2(v)));
  const sub = Math.floor(v / 2 ** (exp - SUB_BITS)) - SUB; // 0..127
  return LINEAR + (exp - 8) * SUB + Math.min(SUB - 1, Math.max(0, sub));
}

/** Midpoint of a bucket, in µs. */
export function bucketValue(index: number): number {
  if (index < LINEAR) return index;
  const exp = 8 + Math.floor((index - LINEAR) / SUB);
  const sub = (index - LINEAR) % SUB;
  const width = 2 ** (exp - SUB_BITS);
  return (SUB + sub) * width + width / 2;
}
