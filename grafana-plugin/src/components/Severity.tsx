import React from 'react';
import { Badge, BadgeColor } from '@grafana/ui';

const COLORS: Record<string, BadgeColor> = {
  CRITICAL: 'red',
  WARN: 'orange',
  INFO: 'blue',
  ONLINE: 'green',
  OFFLINE: 'red',
  DEGRADED: 'orange',
};

/** A severity or host status in its colour, so red always means "look now". */
export function StatusBadge({ value }: { value: string }) {
  return <Badge text={value} color={COLORS[value] ?? 'darkgrey'} />;
}
