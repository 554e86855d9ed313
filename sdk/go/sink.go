package weir

import (
	"errors"
	"fmt"
)

// Sink writes batches to an external system (the sink-operator world).
type Sink interface {
	// Write writes the whole batch; nil means every row is durably
	// accepted. Return Retryable, Permanent or RejectRows otherwise; a
	// Failed error (or any other error) is retryable, InvalidConfig and
	// InvalidInput are permanent.
	Write(batch *Batch) error
}

var newSink func(config string) (Sink, error)

// ExportSink registers the sink of this component: call it from an init function.
func ExportSink(newSink_ func(config string) (Sink, error)) { newSink = newSink_ }

// SinkErrorKind says which WIT `sink-error` case a SinkError becomes.
type SinkErrorKind uint8

const (
	// SinkRetryable: the destination is temporarily unavailable; the host
	// retries the whole batch with backoff.
	SinkRetryable SinkErrorKind = iota
	// SinkPermanent: the batch can never be written; every row goes to
	// the dead-letter topic.
	SinkPermanent
	// SinkRejectedRows: every row was written except Rows, which go to the
	// dead-letter topic.
	SinkRejectedRows
)

// SinkError is why a sink did not accept a batch.
type SinkError struct {
	Kind    SinkErrorKind
	Message string
	Rows    []Rejection
}

func (e *SinkError) Error() string {
	if e.Kind == SinkRejectedRows {
		return fmt.Sprintf("%d rows rejected", len(e.Rows))
	}
	return e.Message
}

// Retryable returns a retryable sink error (fmt.Sprintf-style).
func Retryable(format string, args ...any) error {
	return &SinkError{Kind: SinkRetryable, Message: fmt.Sprintf(format, args...)}
}

// Permanent returns a permanent sink error (fmt.Sprintf-style).
func Permanent(format string, args ...any) error {
	return &SinkError{Kind: SinkPermanent, Message: fmt.Sprintf(format, args...)}
}

// RejectRows says that every row was written except rows.
func RejectRows(rows []Rejection) error {
	return &SinkError{Kind: SinkRejectedRows, Rows: rows}
}

// asSinkError classifies any error like the Rust and Python SDKs: failed
// (and unknown errors) retryable, invalid config/input permanent.
func asSinkError(err error) *SinkError {
	var s *SinkError
	if errors.As(err, &s) {
		return s
	}
	e := asError(err)
	switch e.Kind {
	case KindInvalidConfig:
		return &SinkError{Kind: SinkPermanent, Message: "invalid config: " + e.Message}
	case KindInvalidInput:
		return &SinkError{Kind: SinkPermanent, Message: "invalid input: " + e.Message}
	}
	return &SinkError{Kind: SinkRetryable, Message: "failed: " + e.Message}
}

// Write runs the sink. Called by the glue.
func Write(batch *Batch) *SinkError {
	s, ok := instance.(Sink)
	if !ok {
		return &SinkError{Kind: SinkPermanent, Message: "write before a successful init"}
	}
	if err := s.Write(batch); err != nil {
		return asSinkError(err)
	}
	return nil
}
