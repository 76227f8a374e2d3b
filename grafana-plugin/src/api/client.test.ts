import { FieldType, dataFrameToJSON, setTimeZoneResolver, StreamingDataFrame, toDataFrame } from '@grafana/data';

import { fmtTime } from '../components/time';
import { frameToAlerts } from './client';

describe('fmtTime', () => {
  afterEach(() => setTimeZoneResolver(() => 'browser'));
  it("formats in the user's Grafana time zone, not the browser's", () => {
    // jest runs with TZ=UTC: the browser zone alone would print 12:00.
    setTimeZoneResolver(() => 'Asia/Tokyo');
    expect(fmtTime('2026-11-26T12:00:00.123Z')).toBe('2026-11-26 21:00:00.123');
    setTimeZoneResolver(() => 'utc');
    expect(fmtTime('2026-11-26T12:00:00.123Z')).toBe('2026-11-26 12:00:00.123');
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

describe('frameToAlerts on the Live page channel', () => {
  it('reads a triage change with its stored triage, and a new trip without', () => {
    const frame = toDataFrame({
      fields: [
        { name: 'time', type: FieldType.time, values: [Date.UTC(2026, 10, 26, 12), Date.UTC(2026, 10, 26, 13)] },
        { name: 'alert_id', type: FieldType.string, values: ['id-1', 'id-2'] },
        { name: 'triage_changed', type: FieldType.boolean, values: [true, false] },
        { name: 'triage_state', type: FieldType.string, values: ['ACKNOWLEDGED', null] },
        { name: 'triage_assignee', type: FieldType.string, values: [null, null] },
        { name: 'triage_updated_by', type: FieldType.string, values: ['alice', null] },
        { name: 'triage_updated_at', type: FieldType.time, values: [Date.UTC(2026, 10, 26, 14), null] },
      ],
    });
    const [change, trip] = frameToAlerts(dataFrameToJSON(frame));
    expect(change.triage_changed).toBe(true);
    expect(change.triage).toEqual({
      state: 'ACKNOWLEDGED',
      assignee: undefined,
      updated_by: 'alice',
      updated_at: '2026-11-26T14:00:00.000Z',
    });
    expect(trip.triage_changed).toBeUndefined();
    expect(trip.triage).toBeUndefined();
  });
});

describe("a live panel's rows under Grafana's StreamingDataFrame", () => {
  it('gain nothing from the schema-only answer SubscribeStream gives, and would double from rows', () => {
    // LiveDataStream starts from the panel's query frame and pushes the
    // subscribe-time data (a Status event's message) into the same buffer.
    const query = dataFrameToJSON(
      toDataFrame({
        fields: [
          { name: 'time', type: FieldType.time, values: [1, 2] },
          { name: 'alert_id', type: FieldType.string, values: ['a1', 'a2'] },
        ],
      })
    );
    const copy = () => JSON.parse(JSON.stringify(query));
    const buffer = StreamingDataFrame.fromDataFrameJSON(copy(), { maxLength: 1000 });
    buffer.push({ schema: copy().schema });
    expect(buffer.length).toBe(2);
    buffer.push(copy());
    expect(buffer.length).toBe(4);
  });
});
