/**
 * Keyset pages over (timestamp DESC, id DESC), as every list port returns them. The keyset keeps
 * the timestamp in microseconds, Postgres's own precision: a JS Date would round it to
 * milliseconds, and every row created in the same millisecond as a page's last row, after it in
 * the order, would be skipped.
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
