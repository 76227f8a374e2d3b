import { FieldType, dataFrameToJSON, toDataFrame } from '@grafana/data';

import { frameToAlerts, streamPath } from './client';

describe('streamPath', () => {
  it('encodes filters in the channel path the backend parses', () => {
    expect(streamPath({})).toBe('alerts');
    expect(streamPath({ host: 'web-01', severity: 'CRITICAL' })).toBe('alerts/host=web-01/severity=CRITICAL');
    expect(streamPath({ type: 'file,process', rule: 'r' })).toBe('alerts/type=file,process/rule=r');
  });
});

describe('frameToAlerts', () => {
  it('reads the rows of a stream frame', () => {
    const frame = toDataFrame({
      fields: [
        { name: 'time', type: FieldType.time, values: [Date.UTC(2026, 10, 26, 12)] },
        { name: 'host', type: FieldType.string, values: ['web-01'] },
        { name: 'type', type: FieldType.string, values: ['file'] },
        { name: 'event', type: FieldType.string, values: ['tripwire.file.access'] },
        { name: 'rule', type: FieldType.string, values: ['shadow-read'] },
        { name: 'severity', type: FieldType.string, values: ['CRITICAL'] },
        { name: 'seq', type: FieldType.number, values: [7] },
        { name: 'summary', type: FieldType.string, values: ['cat read /etc/shadow'] },
        { name: 'alert_id', type: FieldType.string, values: ['id-1'] },
      ],
    });
    expect(frameToAlerts(dataFrameToJSON(frame))).toEqual([
      {
        alert_id: 'id-1',
        event_time: '2026-11-26T12:00:00.000Z',
        host_name: 'web-01',
        event_name: 'tripwire.file.access',
        tripwire_type: 'file',
        rule_name: 'shadow-read',
        severity: 'CRITICAL',
        summary: 'cat read /etc/shadow',
        seq: 7,
      },
    ]);
  });
});
