import type { Keyset, KeysetPage } from "../../core/paging.js";
import type { Queryable } from "./database.js";

/** The SQL half of keyset paging (the types are the ports' own, in core/paging.ts). */
export type { Keyset, KeysetPage };

/** The select-list expression that reads a row's keyset timestamp in microseconds. */
function keysetMicros(column: string): string {
  return `(extract(epoch FROM ${column}) * 1000000)::bigint AS keyset_us`;
}

/**
 * ` AND (column, id) < (after)`, its two parameters appended to `values` (so their numbers follow
 * whatever the query already holds); "" on a first page.
 */
function andKeysetBefore(values: unknown[], column: string, after: Keyset | undefined): string {
  if (!after) return "";
  values.push(after.micros, after.id);
  const micros = values.length - 1;
  return ` AND (${column}, id) < ('epoch'::timestamptz + $${micros}::bigint * interval '1 microsecond', $${micros + 1})`;
}

/** Splits the limit+1 rows a query fetched into a page and the cursor of the next one. */
function toKeysetPage<T extends { id: string }>(
  rows: Array<T & { keyset_us: number }>,
  limit: number,
): KeysetPage<T> {
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const last = page[page.length - 1];
  return {
    rows: page.map(({ keyset_us: _, ...row }) => row as unknown as T),
    next: more && last ? { micros: last.keyset_us, id: last.id } : undefined,
  };
}

/**
 * One page of a list, newest first over (`column`, id): `SELECT columns FROM table WHERE where`,
 * its own parameters in `values` ($1...), then the keyset condition and the limit. It fetches
 * one row more than the page, to know whether another page follows without an empty last page.
 */
export async function keysetPage<T extends { id: string }>(
  db: Queryable,
  query: { columns: string; from: string; where: string; values?: unknown[]; column: string },
  page: { limit: number; after?: Keyset },
): Promise<KeysetPage<T>> {
  const values = [...(query.values ?? [])];
  const keyset = andKeysetBefore(values, query.column, page.after);
  values.push(page.limit + 1);
  const { rows } = await db.query<T & { keyset_us: number }>(
    `SELECT ${query.columns}, ${keysetMicros(query.column)} FROM ${query.from}
     WHERE ${query.where}${keyset}
     ORDER BY ${query.column} DESC, id DESC LIMIT $${values.length}`,
    values,
  );
  return toKeysetPage(rows, page.limit);
}
