/**
 * Keeps the last `capBytes` bytes of a stream of chunks (a command's stdout and stderr,
 * interleaved as they arrive) and counts what it dropped. Memory stays at about two caps
 * however much a command prints.
 */
export class OutputTail {
  private chunks: Buffer[] = [];
  private held = 0;
  private dropped = 0;

  constructor(private readonly capBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.held += chunk.length;
    if (this.held > this.capBytes * 2) this.compact();
  }

  private compact(): void {
    const all = Buffer.concat(this.chunks);
    const keep = all.subarray(Math.max(0, all.length - this.capBytes));
    this.dropped += all.length - keep.length;
    this.chunks = [Buffer.from(keep)];
    this.held = keep.length;
  }

  /**
   * The tail as text, at most capBytes bytes long including, when output was dropped, a first
   * line saying how much: "[output truncated: N bytes dropped]".
   */
  text(): { text: string; truncated: boolean } {
    const all = Buffer.concat(this.chunks);
    const droppedSoFar = this.dropped + Math.max(0, all.length - this.capBytes);
    if (droppedSoFar === 0) return { text: all.toString("utf8"), truncated: false };
    // The marker takes room from the tail, so the stored text never exceeds the cap, and its
    // count is exact: every byte of output not in the text is counted as dropped.
    const total = this.dropped + all.length;
    let room = this.capBytes;
    for (;;) {
      let tail = all.subarray(Math.max(0, all.length - room));
      // Do not start in the middle of a UTF-8 sequence: skip continuation bytes.
      let skip = 0;
      while (skip < tail.length && skip < 3 && (tail[skip]! & 0xc0) === 0x80) skip++;
      tail = tail.subarray(skip);
      const marker = `[output truncated: ${total - tail.length} bytes dropped]\n`;
      const markerBytes = Buffer.byteLength(marker);
      if (markerBytes + tail.length <= this.capBytes || tail.length === 0) {
        return { text: `${marker}${tail.toString("utf8")}`, truncated: true };
      }
      room = Math.min(room - 1, this.capBytes - markerBytes);
    }
  }
}

/** Text safe for a Postgres text/jsonb column (no NUL), cut to at most maxBytes of UTF-8. */
export function storableText(text: string, maxBytes: number): string {
  const clean = text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text;
  if (Buffer.byteLength(clean) <= maxBytes) return clean;
  const bytes = Buffer.from(clean).subarray(0, maxBytes);
  return bytes.toString("utf8").replace(/\uFFFD$/, "");
}
