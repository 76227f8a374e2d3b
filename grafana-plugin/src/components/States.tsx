import React from 'react';
import { Alert as AlertBox, Button, EmptyState, LoadingPlaceholder } from '@grafana/ui';

/** Shown while the first data of a view loads. */
export function Loading({ what }: { what: string }) {
  return <LoadingPlaceholder text={`Loading ${what}…`} />;
}

/** Shown when a view has nothing to show: says why, and what to do. */
export function Empty({ message, children }: { message: string; children?: React.ReactNode }) {
  return (
    <EmptyState variant="not-found" message={message}>
      {children}
    </EmptyState>
  );
}

/** Shown when a request failed, with the server's message and a retry. */
export function ErrorView({ title, error, onRetry }: { title: string; error: unknown; onRetry?: () => void }) {
  const message = error instanceof Error ? error.message : String(error);
  return (
    <AlertBox severity="error" title={title} data-testid="error-view">
      <div>{message}</div>
      {onRetry && (
        <Button size="sm" variant="secondary" icon="sync" onClick={onRetry} style={{ marginTop: 8 }}>
          Retry
        </Button>
      )}
    </AlertBox>
  );
}
