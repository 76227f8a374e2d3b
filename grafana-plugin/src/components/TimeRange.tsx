import React, { useCallback, useMemo } from 'react';
import { useSearchParams } from 'react-router-dom';
import { dateTime, getTimeZone, rangeUtil, RawTimeRange, TimeRange } from '@grafana/data';
import { TimeRangePicker } from '@grafana/ui';

/** The range a page opens with when the URL names none. */
export const DEFAULT_RANGE = { from: 'now-24h', to: 'now' };

// The URL keeps Grafana's own forms: relative ("now-6h") or Unix ms.
const fromParam = (s: string) => (/^\d+$/.test(s) ? dateTime(Number(s)) : s);
const toParam = (v: RawTimeRange['from']) => (typeof v === 'string' ? v : String(v.valueOf()));

/**
 * The page's time range, kept in the URL as from/to the way Grafana's own
 * pages keep it. A relative range is resolved once per change, so "now"
 * does not move on every render.
 */
export function useUrlTimeRange() {
  const [params, setParams] = useSearchParams();
  const rawFrom = params.get('from') ?? DEFAULT_RANGE.from;
  const rawTo = params.get('to') ?? DEFAULT_RANGE.to;
  const range = useMemo(
    () => rangeUtil.convertRawToRange({ from: fromParam(rawFrom), to: fromParam(rawTo) }, getTimeZone()),
    [rawFrom, rawTo]
  );
  const setRange = useCallback(
    (r: RawTimeRange) =>
      setParams((prev) => {
        const p = new URLSearchParams(prev);
        p.set('from', toParam(r.from));
        p.set('to', toParam(r.to));
        return p;
      }),
    [setParams]
  );
  return { range, setRange };
}

/** Grafana's time range picker on a range from useUrlTimeRange. */
export function PageTimeRangePicker({ range, setRange }: ReturnType<typeof useUrlTimeRange>) {
  const span = range.to.valueOf() - range.from.valueOf();
  const shift = (by: number) =>
    setRange({ from: dateTime(range.from.valueOf() + by), to: dateTime(range.to.valueOf() + by) });
  return (
    <TimeRangePicker
      value={range}
      timeZone={getTimeZone()}
      onChange={(r: TimeRange) => setRange(r.raw)}
      onChangeTimeZone={() => {}}
      onMoveBackward={() => shift(-span / 2)}
      onMoveForward={() => shift(span / 2)}
      onZoom={() =>
        setRange({ from: dateTime(range.from.valueOf() - span / 2), to: dateTime(range.to.valueOf() + span / 2) })
      }
    />
  );
}

/** The API's from/to for a range: Unix ms. */
export const apiRange = (r: TimeRange) => ({ from: String(r.from.valueOf()), to: String(r.to.valueOf()) });
