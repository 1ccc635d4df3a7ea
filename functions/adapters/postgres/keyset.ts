/**
 * Keyset pages over (timestamp DESC, id DESC). The cursor keeps the timestamp in microseconds,
 * Postgres's own precision: a JS Date would round it to milliseconds, and every row created in
 * the same millisecond as a page's last row, after it in the order, would be skipped.
 */
export interface Keyset {
  micros: number;
  id: string;
}

export interface KeysetPage<T> {
  rows: T[];
  /** Where the next page starts; absent on the last page. */
  next?: Keyset;
}

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
