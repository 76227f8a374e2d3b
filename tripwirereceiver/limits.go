package tripwirereceiver

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// requestLimits bound what decoding one request may cost. Decoding makes a
// Go value per attribute, so a 4 MiB request of tiny attributes cost 34 MiB
// of heap; the limits are checked on the wire bytes first, which costs no
// allocation, and a request over them is never decoded.
type requestLimits struct {
	records         int // log records per request
	attrsPerElement int // attributes of one record, resource or scope
	attrsPerRequest int // attributes and nested values of the request
	maxValueDepth   int // nesting of array and kvlist values
}

var errMalformedRequest = errors.New("malformed OTLP request")

// OTLP field numbers (opentelemetry-proto logs/v1, common/v1).
const (
	fieldRequestResourceLogs = 1 // ExportLogsServiceRequest.resource_logs
	fieldResource            = 1 // ResourceLogs.resource
	fieldScopeLogs           = 2 // ResourceLogs.scope_logs
	fieldResourceAttributes  = 1 // Resource.attributes
	fieldScope               = 1 // ScopeLogs.scope
	fieldLogRecords          = 2 // ScopeLogs.log_records
	fieldScopeAttributes     = 3 // InstrumentationScope.attributes
	fieldRecordBody          = 5 // LogRecord.body
	fieldRecordAttributes    = 6 // LogRecord.attributes
	fieldKeyValueValue       = 2 // KeyValue.value
	fieldAnyArray            = 5 // AnyValue.array_value
	fieldAnyKvlist           = 6 // AnyValue.kvlist_value
	fieldListValues          = 1 // ArrayValue.values, KeyValueList.values
)

// check walks an ExportLogsServiceRequest's wire bytes and reports the first
// limit it exceeds.
func (l *requestLimits) check(b []byte) error {
	s := scan{limits: l}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == fieldRequestResourceLogs && typ == protowire.BytesType {
			return s.resourceLogs(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return nil
}

type scan struct {
	limits  *requestLimits
	records int
	attrs   int // attributes and nested values so far
}

func (s *scan) resourceLogs(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fieldResource:
			return s.attributes(v, fieldResourceAttributes, "resource")
		case fieldScopeLogs:
			return s.scopeLogs(v)
		}
		return nil
	})
}

func (s *scan) scopeLogs(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fieldScope:
			return s.attributes(v, fieldScopeAttributes, "scope")
		case fieldLogRecords:
			s.records++
			if s.records > s.limits.records {
				return fmt.Errorf("request over limits: more than %d log records", s.limits.records)
			}
			if err := s.attributes(v, fieldRecordAttributes, "log record"); err != nil {
				return err
			}
			// The body is one value, but may nest.
			return eachField(v, func(num protowire.Number, typ protowire.Type, body []byte) error {
				if num == fieldRecordBody && typ == protowire.BytesType {
					return s.anyValue(body, 1)
				}
				return nil
			})
		}
		return nil
	})
}

// attributes counts the KeyValues in field num of message b (and the values
// nested in them).
func (s *scan) attributes(b []byte, num protowire.Number, what string) error {
	n := 0
	return eachField(b, func(f protowire.Number, typ protowire.Type, kv []byte) error {
		if f != num || typ != protowire.BytesType {
			return nil
		}
		n++
		if n > s.limits.attrsPerElement {
			return fmt.Errorf("request over limits: a %s with more than %d attributes", what, s.limits.attrsPerElement)
		}
		return s.keyValue(kv, 1)
	})
}

func (s *scan) keyValue(b []byte, depth int) error {
	s.attrs++
	if s.attrs > s.limits.attrsPerRequest {
		return fmt.Errorf("request over limits: more than %d attributes and values", s.limits.attrsPerRequest)
	}
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num == fieldKeyValueValue && typ == protowire.BytesType {
			return s.anyValue(v, depth)
		}
		return nil
	})
}

func (s *scan) anyValue(b []byte, depth int) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType || (num != fieldAnyArray && num != fieldAnyKvlist) {
			return nil
		}
		if depth >= s.limits.maxValueDepth {
			return fmt.Errorf("request over limits: values nested deeper than %d", s.limits.maxValueDepth)
		}
		return eachField(v, func(f protowire.Number, typ protowire.Type, elem []byte) error {
			if f != fieldListValues || typ != protowire.BytesType {
				return nil
			}
			if num == fieldAnyKvlist {
				return s.keyValue(elem, depth+1)
			}
			s.attrs++
			if s.attrs > s.limits.attrsPerRequest {
				return fmt.Errorf("request over limits: more than %d attributes and values", s.limits.attrsPerRequest)
			}
			return s.anyValue(elem, depth+1)
		})
	})
}

// eachField calls fn for every field of message b, with the field's bytes
// for length-delimited ones (nil otherwise).
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformedRequest
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errMalformedRequest
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// limitedCodec is the gRPC "proto" codec with the request limits checked
// before a request is decoded.
type limitedCodec struct {
	encoding.CodecV2
	limits *requestLimits
}

func newLimitedCodec(l *requestLimits) *limitedCodec {
	// The registered "proto" codec is pdata's, which decodes OTLP into
	// pdata with pooled buffers.
	return &limitedCodec{CodecV2: encoding.GetCodecV2("proto"), limits: l}
}

func (c *limitedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	err := c.limits.check(buf.ReadOnlyData())
	buf.Free()
	if err != nil {
		return err
	}
	return c.CodecV2.Unmarshal(data, v)
}

// maxValueDepth bounds array and kvlist nesting; TripWire's attributes are
// flat, so a little nesting is left for other OTLP senders' habits.
const maxValueDepth = 4
