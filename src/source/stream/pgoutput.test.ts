import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bigIntToLsn, compareLsn, lsnToBigInt, PgoutputDecoder } from './pgoutput.ts';

test('LSNs order as 64-bit numbers, not as text', () => {
  assert.equal(compareLsn('9/FFFFFFFF', 'A/0'), -1);
  assert.equal(compareLsn('0/1A', '0/9'), 1);
  assert.equal(compareLsn('1/0', '1/0'), 0);
  assert.equal(bigIntToLsn(lsnToBigInt('16/B374D848')), '16/B374D848');
  assert.throws(() => lsnToBigInt('16-B3'), /not a PostgreSQL LSN/);
});

/** pgoutput's wire format: big-endian integers, zero-terminated strings. */
function message(...parts: (string | number | bigint | ['u8' | 'u16' | 'u32', number])[]): Uint8Array {
  const bytes: number[] = [];
  for (const part of parts) {
    if (typeof part === 'string') bytes.push(...Buffer.from(part), 0);
    else if (typeof part === 'bigint') for (let shift = 56n; shift >= 0n; shift -= 8n) bytes.push(Number((part >> shift) & 0xffn));
    else if (typeof part === 'number') bytes.push(part);
    else {
      const [kind, value] = part;
      const size = kind === 'u8' ? 1 : kind === 'u16' ? 2 : 4;
      for (let i = size - 1; i >= 0; i--) bytes.push((value >> (8 * i)) & 0xff);
    }
  }
  return Uint8Array.from(bytes);
}
const tag = (c: string) => c.charCodeAt(0);
const text = (value: string): (number | ['u32', number])[] => [tag('t'), ['u32', Buffer.byteLength(value)], ...Buffer.from(value)];

test('Relation, then Insert, Update with the old key, Delete, Truncate; Begin and Commit carry LSNs, time and xid', () => {
  const decoder = new PgoutputDecoder();
  // 2000-01-01 + 1 s, in microseconds.
  const begin = decoder.decode(message(tag('B'), 0x1_0000_0010n, 1_000_000n, ['u32', 812]));
  assert.deepEqual(begin, { kind: 'begin', finalLsn: '1/10', time: new Date('2000-01-01T00:00:01Z'), xid: 812 });
  decoder.decode(
    message(
      tag('R'),
      ['u32', 16384],
      'public',
      'grants',
      tag('d'),
      ['u16', 2],
      1,
      'id',
      ['u32', 23],
      ['u32', 0xffffffff],
      0,
      'who',
      ['u32', 25],
      ['u32', 0xffffffff],
    ),
  );
  const insert = decoder.decode(message(tag('I'), ['u32', 16384], tag('N'), ['u16', 2], ...text('7'), tag('n')));
  assert.deepEqual(insert, { kind: 'insert', relation: { id: 16384, table: 'public.grants', columns: ['id', 'who'] }, new: { id: '7', who: null } });
  const update = decoder.decode(message(tag('U'), ['u32', 16384], tag('K'), ['u16', 2], ...text('7'), tag('n'), tag('N'), ['u16', 2], ...text('8'), tag('u')));
  assert.equal(update.kind, 'update');
  assert.deepEqual(update.kind === 'update' && [update.old, update.new], [{ id: '7', who: null }, { id: '8' }], 'an unchanged TOASTed value is absent');
  const remove = decoder.decode(message(tag('D'), ['u32', 16384], tag('O'), ['u16', 2], ...text('8'), ...text('ann')));
  assert.deepEqual(remove.kind === 'delete' && remove.old, { id: '8', who: 'ann' });
  const truncate = decoder.decode(message(tag('T'), ['u32', 1], 0, ['u32', 16384]));
  assert.deepEqual(truncate.kind === 'truncate' && truncate.relations.map((relation) => relation.table), ['public.grants']);
  const commit = decoder.decode(message(tag('C'), 0, 0x1_0000_0040n, 0x1_0000_0070n, 2_000_000n));
  assert.deepEqual(commit, { kind: 'commit', commitLsn: '1/40', endLsn: '1/70', time: new Date('2000-01-01T00:00:02Z') });
  assert.throws(() => decoder.decode(message(tag('I'), ['u32', 99], tag('N'), ['u16', 0])), /relation 99 before its Relation message/);
  assert.deepEqual(decoder.decode(message(tag('O'), 0x10n, 'elsewhere')), { kind: 'other' });
});
