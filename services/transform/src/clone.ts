/**
 * A deep copy of a JSON value (what JSON.parse makes: plain objects, arrays, strings, numbers,
 * booleans, null), for the per-event copies of a message that plan omissions, transformations
 * and filter property actions edit. Several times faster than structuredClone, which spends its
 * time on types a message never holds (it was the largest item of transform's own work in
 * bench:transform's profile).
 */
export function cloneJson<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(cloneJson) as T;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const item = cloneJson((value as Record<string, unknown>)[key]);
    // A `__proto__` key (JSON.parse makes it an own property) stays a property, not the prototype.
    if (key === '__proto__') Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
    else out[key] = item;
  }
  return out as T;
}
