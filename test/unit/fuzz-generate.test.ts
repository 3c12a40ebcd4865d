/** The fuzzer's replay promise: one seed and connection number give the same bytes, whatever else ran. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random, randomBatch, randomBytesLine } from '../fuzz/generate.js';

function draw(seed: number, connection: number, round: number): Buffer {
  const rnd = new Random(seed, connection, round);
  return Buffer.concat([randomBatch(rnd, 40).bytes, randomBytesLine(rnd).bytes]);
}

test('a seed, connection and round replay the same fuzz bytes', () => {
  const first = draw(1234, 5, 6);
  draw(1234, 4, 6); // another connection drawing in between changes nothing
  assert.deepEqual(draw(1234, 5, 6), first);
});

test('other seeds, connections and rounds draw other bytes', () => {
  const base = draw(1234, 5, 6);
  for (const other of [draw(1235, 5, 6), draw(1234, 6, 6), draw(1234, 5, 7)]) assert.notDeepEqual(other, base);
});

test('random draws stay in their bounds and cover them', () => {
  const rnd = new Random(99);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = rnd.int(3, 9);
    assert.ok(n >= 3 && n <= 9, `int(3, 9) gave ${n}`);
    seen.add(n);
  }
  assert.equal(seen.size, 7);
});
