/** A copy of the URL's search params with changes applied: a value sets its key, undefined or '' removes it. */
export function withParams(prev: URLSearchParams, changes: Record<string, string | undefined>): URLSearchParams {
  const p = new URLSearchParams(prev);
  for (const [k, v] of Object.entries(changes)) {
    if (v) {
      p.set(k, v);
    } else {
      p.delete(k);
    }
  }
  return p;
}
