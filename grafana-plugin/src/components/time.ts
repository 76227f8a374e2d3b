import { dateTimeFormat, getTimeZone } from '@grafana/data';

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

/**
 * Date-time with milliseconds, as analysts compare event times, in the
 * signed-in user's time zone: Grafana's own formatter, whose default zone is
 * the user's (or the org's, or the browser's) preference.
 */
export function fmtTime(iso: string | undefined): string {
  if (!iso) {
    return '—';
  }
  return dateTimeFormat(iso, { format: 'YYYY-MM-DD HH:mm:ss.SSS', timeZone: getTimeZone() });
}

/** Days from now until iso (negative when past). */
export function daysUntil(iso: string, now: number = Date.now()): number {
  return (Date.parse(iso) - now) / 86400e3;
}
