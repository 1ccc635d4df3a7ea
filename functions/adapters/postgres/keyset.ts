import type { Keyset, KeysetPage } from "../../core/paging.js";

/** The SQL half of keyset paging (the types are the ports' own, in core/paging.ts). */
export type { Keyset, KeysetPage };

/** The select-list expression that reads a row's keyset timestamp in microseconds. */
export function keysetMicros(column: string): string {
  return `(extract(epoch FROM ${column}) * 1000000)::bigint AS keyset_us`;
}

/**
 * ` AND (column, id) < (after)`, its two parameters appended to `values` (so their numbers follow
 * whatever the query already holds); "" on a first page.
 */
export function andKeysetBefore(values: unknown[], column: string, after: Keyset | undefined): string {
  if (!after) return "";
  values.push(after.micros, after.id);
  const micros = values.length - 1;
  return ` AND (${column}, id) < ('epoch'::timestamptz + $${micros}::bigint * interval '1 microsecond', $${micros + 1})`;
}

/** Splits the limit+1 rows a query fetched into a page and the cursor of the next one. */
export function toKeysetPage<T extends { id: string }>(
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
