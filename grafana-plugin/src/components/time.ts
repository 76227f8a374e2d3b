/** "12 s ago", "3 min ago", ... for last-seen style columns. */
export function ago(iso: string | undefined, now: number = Date.now()): string {
  if (!iso) {
    return '—';
  }
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) {
    return `${s} s ago`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ago`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)} h ago`;
  }
  return `${Math.floor(s / 86400)} d ago`;
}

/** Local date-time with milliseconds, as analysts compare event times. */
export function fmtTime(iso: string | undefined): string {
  if (!iso) {
    return '—';
  }
  const d = new Date(iso);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(
    d.getSeconds()
  )}.${pad(d.getMilliseconds(), 3)}`;
}

/** Days from now until iso (negative when past). */
export function daysUntil(iso: string, now: number = Date.now()): number {
  return (Date.parse(iso) - now) / 86400e3;
}
