import { useEffect, useState } from 'react';

export interface AsyncState<T> {
  data?: T;
  error?: unknown;
  loading: boolean;
  /** Identifies the request the state belongs to; changes on key change and retry. */
  key: string;
  retry: () => void;
}

/**
 * Runs load whenever key changes (key must stand for everything load reads)
 * and keeps only the answer to the latest request, so a slow stale answer
 * never overwrites a newer one. Loading is derived, not stored: the state
 * belongs to an older key until the new answer arrives.
 */
export function useAsync<T>(load: () => Promise<T>, key: string): AsyncState<T> {
  const [attempt, setAttempt] = useState(0);
  const fullKey = `${key}#${attempt}`;
  const [state, setState] = useState<{ key: string; data?: T; error?: unknown }>();

  useEffect(() => {
    let cancelled = false;
    load().then(
      (data) => !cancelled && setState({ key: fullKey, data }),
      (error) => !cancelled && setState({ key: fullKey, error })
    );
    return () => {
      cancelled = true;
    };
    // key stands for load's inputs; load itself is a new closure each render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [fullKey]);

  const current = state?.key === fullKey ? state : undefined;
  return {
    data: current?.data,
    error: current?.error,
    loading: !current,
    key: fullKey,
    retry: () => setAttempt((n) => n + 1),
  };
}
