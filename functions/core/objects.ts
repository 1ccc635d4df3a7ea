/**
 * `{ ...base, ...fields }`, for `fields` that `base` does not have: the same object, keys in the
 * same order. On Node 20 (V8 11) an object literal that spreads an object and then adds new keys
 * takes a slow path, about 1.5 µs per added key (a task's view at its creation spread a task and
 * added nine: 15 µs of every create), while Object.assign copies the same keys in a tenth of
 * that. Overriding keys the spread brought is not slow, so `{ ...task, status }` needs no help.
 * For TME's own objects only: Object.assign sets a key named `__proto__` where a spread defines
 * it, so an object parsed from a caller's JSON is spread, not passed here.
 */
export function withFields<T extends object, F extends object>(base: T, fields: F): T & F {
  return Object.assign({}, base, fields);
}
