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
