import { isUtf8 } from "node:buffer";
import { type ErrorDetail, ValidationFailed } from "../core/errors.js";

/** Deeper JSON than this is refused: nothing TME stores nests that far, and deep values blow stacks. */
export const MAX_JSON_DEPTH = 32;

// A UTF-16 surrogate without its partner cannot be encoded as UTF-8, so it could not come back
// byte for byte; Postgres text and jsonb cannot hold U+0000 at all.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored as it is, or undefined when it can. */
export function unstorableText(value: string): string | undefined {
  if (value.includes("\u0000")) return "must not contain NUL (\\u0000) characters";
  if (LONE_SURROGATE.test(value)) return "must be well-formed Unicode (a lone UTF-16 surrogate was found)";
  return undefined;
}

function pathOf(parts: ReadonlyArray<string | number>): string {
  return parts.length === 0 ? "(body)" : parts.join(".");
}

/**
 * Checks a parsed JSON value before anything else sees it: no string or key Postgres cannot
 * store, no nesting deeper than MAX_JSON_DEPTH. Iterative, so a hostile body cannot overflow
 * the stack here.
 */
export function findUnstorableJson(root: unknown, where: string[] = []): ErrorDetail | undefined {
  const stack: Array<{ value: unknown; path: Array<string | number> }> = [{ value: root, path: where }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === "string") {
      const problem = unstorableText(value);
      if (problem) return { path: pathOf(path), message: problem };
      continue;
    }
    if (typeof value === "number" && !Number.isFinite(value)) {
      return { path: pathOf(path), message: "number out of range" };
    }
    if (value === null || typeof value !== "object") continue;
    if (path.length - where.length >= MAX_JSON_DEPTH) {
      return { path: pathOf(path), message: `nested deeper than ${MAX_JSON_DEPTH} levels` };
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        stack.push({ value: item, path: [...path, i] });
      });
      continue;
    }
    for (const [key, item] of Object.entries(value)) {
      const problem = unstorableText(key);
      if (problem) return { path: pathOf([...path, key]), message: `key ${problem}` };
      stack.push({ value: item, path: [...path, key] });
    }
  }
  return undefined;
}

/** Throws a 400 naming the field when the value holds something that cannot be stored. */
export function assertStorableJson(value: unknown, where: "body" | "query" | "path"): void {
  const problem = findUnstorableJson(value, where === "body" ? [] : [where]);
  if (problem) throw new ValidationFailed(`invalid ${where}: ${problem.path}: ${problem.message}`, [problem]);
}

/**
 * The offset of the first byte that is not well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or undefined when all of it is. Decoding would silently
 * turn such bytes into U+FFFD, and the caller's string would not come back as it was sent.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number | undefined {
  if (isUtf8(bytes)) return undefined;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) need = 2;
    else if (b >= 0xf0 && b <= 0xf4) need = 3;
    else return i;
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    min = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    if (b === 0xed) max = 0x9f;
    if (b === 0xf4) max = 0x8f;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? min : 0x80) || c > (k === 1 ? max : 0xbf)) return i;
    }
    i += need + 1;
  }
  return undefined;
}

/** A body's bytes as text, or a 400 naming the byte offset where it stops being UTF-8. */
export function decodeUtf8Body(bytes: Buffer): string {
  const offset = firstInvalidUtf8(bytes);
  if (offset !== undefined) {
    const message = `not valid UTF-8 at byte offset ${offset} (byte 0x${bytes[offset]!.toString(16).padStart(2, "0")})`;
    throw new ValidationFailed(`body is ${message}`, [{ path: "(body)", message }]);
  }
  return bytes.toString("utf8");
}

/**
 * Query parameters are percent-encoded UTF-8; URLSearchParams would replace a bad sequence with
 * U+FFFD. decodeURIComponent refuses it instead, which is what tells us where.
 */
export function assertUtf8Query(rawQuery: string | undefined): void {
  if (!rawQuery) return;
  for (const part of rawQuery.split("&")) {
    try {
      decodeURIComponent(part.replace(/\+/g, " "));
    } catch {
      const name = part.split("=")[0] ?? "";
      const field = /^[\w.-]{1,64}$/.test(name) ? `query.${name}` : "query";
      throw new ValidationFailed(`invalid ${field}: not valid UTF-8 percent-encoding`, [
        { path: field, message: "percent-encoded bytes must be well-formed UTF-8" },
      ]);
    }
  }
}
