// Decoding of pgoutput, PostgreSQL's built-in logical decoding output plugin, protocol version 1
// (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html): the messages
// `pg_logical_slot_peek_binary_changes` returns, one per row. Column values arrive as text.

/** A WAL location, `X/Y` in hexadecimal, as PostgreSQL prints a `pg_lsn`. */
export type Lsn = string;

export function lsnToBigInt(lsn: Lsn): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (match === null) throw new TypeError(`not a PostgreSQL LSN: ${JSON.stringify(lsn)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function bigIntToLsn(value: bigint): Lsn {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function compareLsn(a: Lsn, b: Lsn): number {
  const x = lsnToBigInt(a);
  const y = lsnToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A table's columns as the last Relation message described them. */
export interface Relation {
  id: number;
  /** `schema.table` (pgoutput leaves the schema empty for pg_catalog). */
  table: string;
  columns: string[];
}

/** A row's columns: text values, null for SQL NULL; a TOASTed value an update left unchanged is absent. */
export type PgRow = Record<string, string | null>;

export type Message =
  | { kind: 'begin'; finalLsn: Lsn; time: Date; xid: number }
  | { kind: 'commit'; commitLsn: Lsn; endLsn: Lsn; time: Date }
  | { kind: 'relation'; relation: Relation }
  | { kind: 'insert'; relation: Relation; new: PgRow }
  | { kind: 'update'; relation: Relation; old?: PgRow; new: PgRow }
  | { kind: 'delete'; relation: Relation; old: PgRow }
  | { kind: 'truncate'; relations: Relation[] }
  | { kind: 'other' };

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC). */
const PG_EPOCH_US = 946_684_800_000_000n;
const text = new TextDecoder();

/**
 * Reads pgoutput messages in order; Relation messages are remembered, so the row messages after
 * them (in this peek or a later one) name their table and columns.
 */
export class PgoutputDecoder {
  readonly #relations = new Map<number, Relation>();

  decode(data: Uint8Array): Message {
    const reader = new Reader(data);
    const tag = String.fromCharCode(reader.u8());
    switch (tag) {
      case 'B': {
        const finalLsn = reader.lsn();
        const time = reader.time();
        return { kind: 'begin', finalLsn, time, xid: reader.u32() };
      }
      case 'C': {
        reader.u8(); // flags, unused
        const commitLsn = reader.lsn();
        const endLsn = reader.lsn();
        return { kind: 'commit', commitLsn, endLsn, time: reader.time() };
      }
      case 'R': {
        const id = reader.u32();
        const schema = reader.string();
        const name = reader.string();
        reader.u8(); // replica identity setting
        const count = reader.u16();
        const columns: string[] = [];
        for (let i = 0; i < count; i++) {
          reader.u8(); // flags: part of the key
          columns.push(reader.string());
          reader.u32(); // type OID
          reader.u32(); // type modifier
        }
        const relation = { id, table: `${schema === '' ? 'pg_catalog' : schema}.${name}`, columns };
        this.#relations.set(id, relation);
        return { kind: 'relation', relation };
      }
      case 'I': {
        const relation = this.#relation(reader.u32());
        reader.expect('N');
        return { kind: 'insert', relation, new: reader.tuple(relation) };
      }
      case 'U': {
        const relation = this.#relation(reader.u32());
        let marker = String.fromCharCode(reader.u8());
        let old: PgRow | undefined;
        if (marker === 'K' || marker === 'O') {
          old = reader.tuple(relation);
          marker = String.fromCharCode(reader.u8());
        }
        if (marker !== 'N') throw new Error(`pgoutput: an Update message without its new tuple (found ${JSON.stringify(marker)})`);
        const row = reader.tuple(relation);
        return old === undefined ? { kind: 'update', relation, new: row } : { kind: 'update', relation, old, new: row };
      }
      case 'D': {
        const relation = this.#relation(reader.u32());
        reader.u8(); // 'K' (key columns) or 'O' (the whole old row, REPLICA IDENTITY FULL)
        return { kind: 'delete', relation, old: reader.tuple(relation) };
      }
      case 'T': {
        const count = reader.u32();
        reader.u8(); // options: CASCADE, RESTART IDENTITY
        const relations: Relation[] = [];
        for (let i = 0; i < count; i++) relations.push(this.#relation(reader.u32()));
        return { kind: 'truncate', relations };
      }
      default:
        // Origin, Type, Message: nothing a record carries.
        return { kind: 'other' };
    }
  }

  #relation(id: number): Relation {
    const relation = this.#relations.get(id);
    if (relation === undefined) throw new Error(`pgoutput: a row message for relation ${id} before its Relation message`);
    return relation;
  }
}

class Reader {
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u8(): number {
    return this.#view.getUint8(this.#at++);
  }

  u16(): number {
    const value = this.#view.getUint16(this.#at);
    this.#at += 2;
    return value;
  }

  u32(): number {
    const value = this.#view.getUint32(this.#at);
    this.#at += 4;
    return value;
  }

  lsn(): Lsn {
    const value = this.#view.getBigUint64(this.#at);
    this.#at += 8;
    return bigIntToLsn(value);
  }

  time(): Date {
    const us = this.#view.getBigInt64(this.#at);
    this.#at += 8;
    return new Date(Number((us + PG_EPOCH_US) / 1000n));
  }

  string(): string {
    const end = this.#bytes.indexOf(0, this.#at);
    if (end < 0) throw new Error('pgoutput: a string without its terminating zero byte');
    const value = text.decode(this.#bytes.subarray(this.#at, end));
    this.#at = end + 1;
    return value;
  }

  expect(tag: string): void {
    const found = String.fromCharCode(this.u8());
    if (found !== tag) throw new Error(`pgoutput: expected ${JSON.stringify(tag)}, found ${JSON.stringify(found)}`);
  }

  tuple(relation: Relation): PgRow {
    const count = this.u16();
    const row: PgRow = {};
    for (let i = 0; i < count; i++) {
      const name = relation.columns[i] ?? `column${i + 1}`;
      const kind = String.fromCharCode(this.u8());
      let value: string | null;
      if (kind === 'n') value = null;
      else if (kind === 't' || kind === 'b') {
        const length = this.u32();
        value = text.decode(this.#bytes.subarray(this.#at, this.#at + length));
        this.#at += length;
      } else if (kind === 'u') continue;
      else throw new Error(`pgoutput: unknown column kind ${JSON.stringify(kind)}`);
      // A column named __proto__ is defined, not assigned: a field, not the row's prototype.
      if (name === '__proto__') Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
      else row[name] = value;
    }
    return row;
  }
}
